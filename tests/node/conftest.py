"""Node test fixtures: a node home with a dataset, a pinned test hub key, a signed agreement."""

import asyncio
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import polars as pl
import pytest
from database_support import Side
from fastapi import FastAPI
from joserfc.jwk import OKPKey

from contracts import signing
from contracts.v1 import (
    AgreementSignature,
    AgreementTerms,
    Column,
    DatasetContract,
    DatasetRef,
    Level,
    Party,
    PrivacyUnit,
    QueryRequest,
    QuerySpec,
    SignaturePayload,
    SignedAgreement,
)
from node.agreements import service as agreements
from node.app import create_app
from node.datasets import service as datasets
from node.db import dispose_engines
from node.home import NodeIdentity, init_home, load_identity, pin_hub
from node.settings import NodeSettings

HUB_ID = "test-hub"
ANALYST_ORG = "NSO Nepal"
SEXES = ("female", "male", "other")
DISTRICTS = ("north", "south")
GROUPS = ("dalit", "adivasi", "none")


def contract(
    *,
    name: str = "survey",
    version: int = 1,
    max_contributions: int = 1,
    extra_levels: tuple[str, ...] = (),
) -> DatasetContract:
    return DatasetContract(
        name=name,
        version=version,
        title="Test survey",
        columns=(
            Column(name="respondent", type="string", role="unit_key"),
            Column(name="phone", type="string", role="identifier"),
            Column(name="comment", type="string", role="free_text"),
            Column(name="sex", type="categorical", levels=tuple(Level(code=c) for c in SEXES)),
            Column(
                name="district", type="categorical", levels=tuple(Level(code=c) for c in DISTRICTS)
            ),
            Column(
                name="group",
                type="categorical",
                levels=tuple(Level(code=c) for c in (*GROUPS, *extra_levels)),
            ),
            Column(
                name="disability", type="categorical", levels=(Level(code="yes"), Level(code="no"))
            ),
            Column(name="age", type="integer", role="measure", lower=0, upper=120),
        ),
        privacy=PrivacyUnit(unit_key="respondent", max_contributions=max_contributions),
    )


def frame(rows: int = 300, seed: int = 1) -> pl.DataFrame:
    """Deterministic synthetic rows; every respondent appears once."""
    rnd = random.Random(seed)
    return pl.DataFrame(
        {
            "respondent": [f"r{i}" for i in range(rows)],
            "phone": [f"+000{i:07d}" for i in range(rows)],
            "comment": ["fine" for _ in range(rows)],
            "sex": [rnd.choice(SEXES[:2]) for _ in range(rows)],
            "district": [rnd.choice(DISTRICTS) for _ in range(rows)],
            "group": [rnd.choice(GROUPS) for _ in range(rows)],
            "disability": [rnd.choice(("yes", "no", "no")) for _ in range(rows)],
            "age": [rnd.randint(15, 90) for _ in range(rows)],
        }
    )


def terms(node_id: str, **overrides: Any) -> AgreementTerms:
    now = datetime.now(UTC)
    fields: dict[str, Any] = {
        "agreement_id": "mou-1",
        "version": 1,
        "title": "Test MoU",
        "purpose": "testing",
        "hub_id": HUB_ID,
        "parties": (
            Party(organisation="Secretariat", role="secretariat"),
            Party(organisation="CSO", role="cso", country="524", node_id=node_id),
        ),
        "datasets": (DatasetRef(name="survey", contract_version=1),),
        "measures": ("count", "share"),
        "columns": ("disability", "sex", "age"),
        "dims": ("sex", "district", "group", "disability"),
        "max_dims": 3,
        "min_cell_size": 0,
        "rho_per_query_max": 1.0,
        "rho_budget": 5.0,
        "analyst_organisations": (ANALYST_ORG,),
        "valid_from": now - timedelta(days=1),
        "valid_until": now + timedelta(days=365),
    }
    fields.update(overrides)
    return AgreementTerms(**fields)


def hub_signed(agreement_terms: AgreementTerms, hub_key: OKPKey) -> SignedAgreement:
    d = signing.digest(agreement_terms)
    payload = SignaturePayload(
        agreement_id=agreement_terms.agreement_id,
        version=agreement_terms.version,
        digest=d,
        signer=HUB_ID,
        signed_at=datetime.now(UTC),
    )
    sig = AgreementSignature(
        signer=HUB_ID, kid=signing.key_id(hub_key), jws=signing.sign(payload, hub_key)
    )
    return SignedAgreement(terms=agreement_terms, digest=d, signatures=(sig,))


class AppClient:
    """Drives the ASGI app in process (httpx.ASGITransport), one event loop per call."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        async def call() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://node") as client:
                return await client.request(method, url, **kwargs)

        return asyncio.run(call())

    def get(self, url: str) -> httpx.Response:
        return self.request("GET", url)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)


@dataclass
class Node:
    home: Path
    settings: NodeSettings
    identity: NodeIdentity
    hub_key: OKPKey
    terms: AgreementTerms
    client: AppClient
    # What `request` marks its requests for: "secure" for the secure aggregation routes.
    aggregation: str = "per_node"

    def request(
        self, spec: QuerySpec | None = None, *, query_id: uuid.UUID | None = None, **overrides: Any
    ) -> QueryRequest:
        now = datetime.now(UTC)
        spec = spec or QuerySpec(
            agreement_id=self.terms.agreement_id,
            dataset="survey",
            measure="count",
            group_by=("sex",),
            rho=0.1,
        )
        fields: dict[str, Any] = {
            "query_id": query_id or uuid.uuid4(),
            "hub_id": HUB_ID,
            "node_id": self.identity.node_id,
            "agreement_id": self.terms.agreement_id,
            "agreement_version": self.terms.version,
            "agreement_digest": signing.digest(self.terms),
            "spec": spec,
            "rho": spec.rho,
            "issued_at": now,
            "expires_at": now + timedelta(minutes=10),
            "nonce": uuid.uuid4().hex,
            "analyst": "analyst",
            "analyst_organisation": ANALYST_ORG,
            "aggregation": self.aggregation,
        }
        fields.update(overrides)
        return QueryRequest(**fields)

    def post(self, request: QueryRequest, key: OKPKey | None = None) -> Any:
        token = signing.sign(request, key or self.hub_key)
        return self.client.post("/v1/queries", json={"jws": token})

    def spec(self, **fields: Any) -> QuerySpec:
        base: dict[str, Any] = {
            "agreement_id": self.terms.agreement_id,
            "dataset": "survey",
            "measure": "count",
            "rho": 0.1,
        }
        base.update(fields)
        return QuerySpec(**base)


def make_node(
    home: Path,
    database_url: str,
    *,
    data: pl.DataFrame | None = None,
    dataset_contract: DatasetContract | None = None,
    **term_overrides: Any,
) -> Node:
    identity = init_home(home, name="Test CSO Nepal", country="524")
    hub_key = signing.generate_key()
    pin_hub(home, hub_id=HUB_ID, public_jwk=signing.public_jwk(hub_key))
    settings = NodeSettings(home=home, database_url=database_url)
    datasets.import_frame(
        home=home,
        contract=dataset_contract or contract(),
        frame=frame() if data is None else data,
        settings=settings,
    )
    agreement_terms = terms(identity.node_id, **term_overrides)
    agreements.sign(home=home, agreement=hub_signed(agreement_terms, hub_key), settings=settings)
    client = AppClient(create_app(settings))
    return Node(home, settings, load_identity(home), hub_key, agreement_terms, client)


@pytest.fixture
def database_schema() -> Side | None:
    """Node tests' fresh databases hold the node's schema at head (tests/database_support)."""
    return "node"


@pytest.fixture(autouse=True)
def _dispose_engines() -> Iterator[None]:
    """Close pooled connections before the test's PostgreSQL database is dropped."""
    yield
    dispose_engines()


@pytest.fixture
def node(tmp_path: Path, db_url: str) -> Iterator[Node]:
    made = make_node(tmp_path / "node", db_url)
    yield made
    dispose_engines()


@pytest.fixture
def sqlite_node(tmp_path: Path) -> Iterator[Node]:
    made = make_node(tmp_path / "node", f"sqlite:///{tmp_path}/node.sqlite")
    yield made
    dispose_engines()
