"""Hub test support: a hub home and app on SQLite/PostgreSQL, and simulated nodes.

A simulated node is a real HTTP handler (httpx.MockTransport) holding its own Ed25519 key:
it verifies the hub's request and signs a release from a fixed table of cells. It stands in
for the node package where a test needs failures on demand (5xx, timeouts, bad signatures).
"""

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio.from_thread
import httpx
import pytest
from fastapi import FastAPI
from joserfc.jwk import OKPKey
from sqlalchemy.orm import Session

from contracts import signing
from contracts.v1 import (
    AgreementSignature,
    AgreementTerms,
    Cell,
    DatasetContract,
    DatasetInfo,
    DatasetRef,
    ErrorBody,
    ErrorResponse,
    Party,
    PublishedContracts,
    QueryRequest,
    Release,
    SignaturePayload,
    Signed,
)
from hub.app import create_app
from hub.auth.tokens import create_token
from hub.db import init_db, make_engine
from hub.home import HubIdentity, init_home
from hub.settings import HubSettings

HUB_ID = "test-hub"
ANALYST_ORG = "nso-kenya"
DATASET = "lnob_household"


class AppClient:
    """A sync client for an ASGI app, running its lifespan, on an anyio blocking portal.

    (starlette's TestClient warns about httpx under starlette 1.x, and warnings are errors.)
    """

    def __init__(self, app: FastAPI) -> None:
        self._portal_cm = anyio.from_thread.start_blocking_portal()
        self.portal = self._portal_cm.__enter__()
        self._lifespan = app.router.lifespan_context(app)
        self.portal.call(self._lifespan.__aenter__)
        self._client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://hub.test"
        )

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        async def send() -> httpx.Response:
            return await self._client.request(method, url, **kwargs)

        return self.portal.call(send)

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)

    def close(self) -> None:
        try:
            self.portal.call(self._client.aclose)
            self.portal.call(self._lifespan.__aexit__, None, None, None)
        finally:
            self._portal_cm.__exit__(None, None, None)


class RoutingTransport(httpx.AsyncBaseTransport):
    """Send each request to the transport registered for its host."""

    def __init__(self, routes: dict[str, httpx.AsyncBaseTransport]) -> None:
        self.routes = routes

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        transport = self.routes.get(request.url.host)
        if transport is None:
            raise httpx.ConnectError("no such host", request=request)
        return await transport.handle_async_request(request)


SIM_DELTA = 1e-7


@dataclass
class SimNode:
    """A simulated node. `script` lists what to do for successive calls, then `ok` forever."""

    node_id: str
    country: str
    hub_key: dict[str, Any]
    cells: dict[tuple[str, ...], Cell] = field(default_factory=dict)
    noise_scale: float = 2.0
    script: list[str] = field(default_factory=list)
    key: OKPKey = field(default_factory=signing.generate_key)
    calls: int = 0
    requests: list[QueryRequest] = field(default_factory=list)
    # The public contracts it serves at GET /v1/contracts (none: 404, as an older node).
    contracts: tuple[DatasetContract, ...] = ()
    contract_fetches: int = 0

    @property
    def host(self) -> str:
        return f"{self.node_id}.nodes.test"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def published(self) -> str:
        """Its contracts, signed with its key, as GET /v1/contracts answers."""
        return signing.sign(
            PublishedContracts(
                node_id=self.node_id,
                issued_at=datetime.now(UTC),
                datasets=tuple(
                    DatasetInfo(contract=c, contract_digest=signing.digest(c))
                    for c in self.contracts
                ),
            ),
            self.key,
        )

    def handle(self, request: httpx.Request) -> httpx.Response:
        if request.method == "GET" and request.url.path == "/v1/contracts":
            # Public metadata, not a query: never counted as a call, never scripted.
            self.contract_fetches += 1
            if not self.contracts:
                return httpx.Response(404, json={"error": {"code": "not_found", "message": ""}})
            return httpx.Response(200, json={"jws": self.published()})
        self.calls += 1
        action = self.script.pop(0) if self.script else "ok"
        if action == "timeout":
            raise httpx.ReadTimeout("simulated", request=request)
        if action == "503":
            return httpx.Response(503, json={"error": {"code": "busy", "message": "busy"}})
        if action == "garbage":
            return httpx.Response(200, text="<html>not a release</html>")
        if action == "refuse":
            body = ErrorResponse(error=ErrorBody(code="budget_exhausted", message="no budget"))
            return httpx.Response(403, json=body.model_dump(mode="json"))
        signed = Signed.model_validate_json(request.content)
        query = signing.verify_model(
            signed.jws, signing.load_public_key(self.hub_key), QueryRequest
        )
        self.requests.append(query)
        release = Release(
            query_id=query.query_id,
            node_id=self.node_id if action != "wrong_node" else "someone-else",
            agreement_id=query.agreement_id,
            agreement_version=query.agreement_version,
            dataset=query.spec.dataset,
            contract_version=1,
            measure=query.spec.measure,
            group_by=query.spec.group_by,
            mechanism="discrete_gaussian",
            rho=query.rho,
            noise_scale=self.noise_scale,
            request_digest=signing.digest(query),
            cells=tuple(self.cells.values()),
            released_at=datetime.now(UTC),
            # Bun & Steinke's conversion of rho-zCDP, as a real node states it (OpenDP's is
            # a little tighter).
            epsilon=query.rho + 2 * math.sqrt(query.rho * math.log(1 / SIM_DELTA)),
            delta=SIM_DELTA,
        )
        key = signing.generate_key() if action == "bad_signature" else self.key
        return httpx.Response(200, json={"jws": signing.sign(release, key)})

    def sign_agreement(self, agreement_id: str, version: int, digest: str) -> AgreementSignature:
        payload = SignaturePayload(
            agreement_id=agreement_id,
            version=version,
            digest=digest,
            signer=self.node_id,
            signed_at=datetime.now(UTC),
        )
        return AgreementSignature(
            signer=self.node_id, kid=signing.key_id(self.key), jws=signing.sign(payload, self.key)
        )

    def registration(self) -> dict[str, Any]:
        return {
            "node_id": self.node_id,
            "name": f"CSO {self.node_id}",
            "country": self.country,
            "url": self.url,
            "public_jwk": signing.public_jwk(self.key),
        }


def count_cell(key: tuple[str, ...], estimate: float, sigma: float = 2.0) -> Cell:
    half = 1.959963984540054 * sigma
    return Cell(
        key=key, status="ok", estimate=estimate, ci95_low=estimate - half, ci95_high=estimate + half
    )


def make_terms(
    nodes: list[SimNode] | list[tuple[str, str]],
    *,
    agreement_id: str = "lnob-2026",
    version: int = 1,
    **overrides: Any,
) -> AgreementTerms:
    pairs = [(n.node_id, n.country) if isinstance(n, SimNode) else n for n in nodes]
    now = datetime.now(UTC)
    fields: dict[str, Any] = {
        "agreement_id": agreement_id,
        "version": version,
        "title": "LNOB data sharing",
        "purpose": "SDG monitoring",
        "hub_id": HUB_ID,
        "parties": (
            Party(organisation="LNOB secretariat", role="secretariat"),
            *(
                Party(organisation=f"CSO {node_id}", role="cso", country=country, node_id=node_id)
                for node_id, country in pairs
            ),
        ),
        "datasets": (DatasetRef(name=DATASET, contract_version=1),),
        "measures": ("count", "share"),
        "columns": ("violence_12m", "disability"),
        "dims": ("group", "sex", "age_band", "district"),
        "max_dims": 2,
        "min_cell_size": 5,
        "rho_per_query_max": 0.5,
        "rho_budget": 5.0,
        "analyst_organisations": (ANALYST_ORG,),
        "valid_from": now - timedelta(days=1),
        "valid_until": now + timedelta(days=365),
    }
    fields.update(overrides)
    return AgreementTerms(**fields)


@pytest.fixture
def hub_home(tmp_path: Path) -> HubIdentity:
    return init_home(tmp_path / "hub", hub_id=HUB_ID)


@pytest.fixture
def hub_settings(tmp_path: Path, hub_home: HubIdentity, db_url: str) -> HubSettings:
    return HubSettings(
        home=tmp_path / "hub",
        database_url=db_url,
        node_timeout_seconds=5,
        node_retries=2,
        node_backoff_seconds=0.001,
    )


@pytest.fixture
def session(hub_settings: HubSettings) -> Iterator[Session]:
    engine = make_engine(hub_settings.effective_database_url)
    try:
        with init_db(engine)() as s:
            yield s
    finally:
        engine.dispose()


@dataclass
class Hub:
    """A running hub app with one token per role and the simulated nodes it can reach."""

    client: AppClient
    settings: HubSettings
    identity: HubIdentity
    nodes: dict[str, SimNode]
    tokens: dict[str, str]

    def headers(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}

    def register(self, node: SimNode) -> None:
        response = self.client.post(
            "/v1/nodes", json=node.registration(), headers=self.headers("admin")
        )
        assert response.status_code == 201, response.text

    def agree(
        self, terms: AgreementTerms, *, signers: list[SimNode] | None = None
    ) -> dict[str, Any]:
        body = self.propose(terms)
        digest = body["agreement"]["digest"]
        for node in signers if signers is not None else list(self.nodes.values()):
            signature = node.sign_agreement(terms.agreement_id, terms.version, digest)
            body = self.countersign(terms.agreement_id, signature)
        return body

    def propose(self, terms: AgreementTerms) -> dict[str, Any]:
        """The secretariat creates `terms` (hub-signed); the hub's answer."""
        response = self.client.post(
            "/v1/agreements",
            json=terms.model_dump(mode="json"),
            headers=self.headers("secretariat"),
        )
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body

    def countersign(self, agreement_id: str, signature: AgreementSignature) -> dict[str, Any]:
        """The secretariat hands in a node's signature; the hub's answer."""
        response = self.client.post(
            f"/v1/agreements/{agreement_id}/signatures",
            json=signature.model_dump(mode="json"),
            headers=self.headers("secretariat"),
        )
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body


def issue_tokens(settings: HubSettings) -> dict[str, str]:
    engine = make_engine(settings.effective_database_url)
    try:
        with init_db(engine)() as s:
            return {
                "admin": create_token(session=s, name="admin", organisation="sec", role="admin"),
                "secretariat": create_token(
                    session=s, name="sec", organisation="sec", role="secretariat"
                ),
                "analyst": create_token(
                    session=s, name="ana", organisation=ANALYST_ORG, role="analyst"
                ),
                "outsider": create_token(
                    session=s, name="out", organisation="other-org", role="analyst"
                ),
                "auditor": create_token(session=s, name="aud", organisation="sec", role="auditor"),
            }
    finally:
        engine.dispose()


@pytest.fixture
def make_hub(hub_settings: HubSettings, hub_home: HubIdentity) -> Iterator[Callable[..., Hub]]:
    """Build a hub app reaching the given simulated nodes (and extra transports by host)."""
    stack: list[AppClient] = []

    def build(
        nodes: list[SimNode], extra: dict[str, httpx.AsyncBaseTransport] | None = None
    ) -> Hub:
        routes: dict[str, httpx.AsyncBaseTransport] = {n.host: n.transport() for n in nodes}
        routes.update(extra or {})
        app = create_app(hub_settings, transport=RoutingTransport(routes))
        client = AppClient(app)
        stack.append(client)
        return Hub(
            client=client,
            settings=hub_settings,
            identity=hub_home,
            nodes={n.node_id: n for n in nodes},
            tokens=issue_tokens(hub_settings),
        )

    yield build
    for client in stack:
        client.close()


@pytest.fixture
def sim_nodes(hub_home: HubIdentity) -> list[SimNode]:
    """Two nodes in Kenya, one in Nepal, each with cells by `sex`."""

    def node(node_id: str, country: str, female: float, male: float) -> SimNode:
        return SimNode(
            node_id=node_id,
            country=country,
            hub_key=hub_home.public_jwk,
            cells={
                ("female",): count_cell(("female",), female),
                ("male",): count_cell(("male",), male),
            },
        )

    return [
        node("ke-a", "404", 100.0, 80.0),
        node("ke-b", "404", 50.0, 40.0),
        node("np-a", "524", 30.0, 20.0),
    ]


@pytest.fixture
def federation(make_hub: Callable[..., Hub], sim_nodes: list[SimNode]) -> Hub:
    """A hub with three registered simulated nodes and an active agreement `lnob-2026`."""
    hub = make_hub(sim_nodes)
    for node in sim_nodes:
        hub.register(node)
    status = hub.agree(make_terms(sim_nodes))["status"]
    assert status == "active"
    return hub
