"""Real node apps behind an in-process hub: node homes with data, registration, signing.

Each node is the node package's own app over `httpx.ASGITransport`, reached by the hub at
`http://<node_id>.nodes.test`. The hub registers every node through its API; an agreement
is created at the hub, signed by each steward at the node with the node key, and the hub
collects the signatures (what `Hub.agree` does for simulated nodes).
"""

import base64
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import polars as pl
from hub_support import DATASET, Hub
from sqlalchemy import create_engine, inspect, text

from contracts.v1 import (
    AgreementTerms,
    Column,
    DatasetContract,
    Level,
    PrivacyUnit,
    SignedAgreement,
)
from hub.home import HubIdentity
from node import home as node_home
from node.agreements import service as node_agreements
from node.app import create_app as create_node_app
from node.datasets import service as node_datasets
from node.settings import NodeSettings

SEXES = ("female", "male")


@dataclass(frozen=True)
class NodeData:
    """One real node to start: its country (UN M49), its dataset and, if not `CSO <id>`, name.
    Without a contract the node starts empty (its steward imports later)."""

    country: str
    contract: DatasetContract | None
    frame: pl.DataFrame | None
    name: str | None = None


@dataclass
class RealNodes:
    """A hub app reaching real node apps; `routes` (host -> app) serve another hub app too."""

    hub: Hub
    homes: dict[str, Path]  # node id -> node home
    routes: dict[str, httpx.AsyncBaseTransport]

    def agree(self, terms: AgreementTerms) -> dict[str, Any]:
        """Create `terms` at the hub, sign them at every node; the last signature's answer."""
        body = self.hub.propose(terms)
        signed = SignedAgreement.model_validate(body["agreement"])
        for home in self.homes.values():
            # The steward signs at the node, with the node key; the hub only collects it.
            signature = node_agreements.sign(
                home=home, agreement=signed, settings=NodeSettings(home=home)
            )
            body = self.hub.countersign(terms.agreement_id, signature)
        return body


def lnob_contract(*columns: Column) -> DatasetContract:
    """The LNOB household survey: one row per `respondent`, their `sex`, then `columns`."""
    return DatasetContract(
        name=DATASET,
        version=1,
        title="LNOB household survey",
        columns=(
            Column(name="respondent", type="string", role="unit_key"),
            Column(name="sex", type="categorical", levels=tuple(Level(code=c) for c in SEXES)),
            *columns,
        ),
        privacy=PrivacyUnit(unit_key="respondent", max_contributions=1),
    )


def start_real_nodes(
    tmp_path: Path,
    hub_home: HubIdentity,
    make_hub: Callable[..., Hub],
    nodes: Mapping[str, NodeData],
    *,
    hub_url: str | None = None,
    wrap: Callable[[str, httpx.AsyncBaseTransport], httpx.AsyncBaseTransport] | None = None,
) -> RealNodes:
    """Node homes under `tmp_path` (hub pinned, dataset imported), a hub reaching their apps,
    and every node registered at the hub by the secretariat. `wrap(node_id, transport)`
    may put a node's app behind another transport (to fail or record its traffic)."""
    homes: dict[str, Path] = {}
    routes: dict[str, httpx.AsyncBaseTransport] = {}
    for node_id, node in nodes.items():
        home = tmp_path / node_id
        node_home.init_home(
            home, name=node.name or f"CSO {node_id}", country=node.country, node_id=node_id
        )
        node_home.pin_hub(home, hub_id=hub_home.hub_id, public_jwk=hub_home.public_jwk, url=hub_url)
        if node.contract is not None and node.frame is not None:
            node_datasets.import_frame(home=home, contract=node.contract, frame=node.frame)
        homes[node_id] = home
        transport: httpx.AsyncBaseTransport = httpx.ASGITransport(
            app=create_node_app(NodeSettings(home=home))
        )
        routes[f"{node_id}.nodes.test"] = wrap(node_id, transport) if wrap else transport
    hub = make_hub([], extra=routes)
    for node_id, home in homes.items():
        identity = node_home.load_identity(home)
        response = hub.client.post(
            "/v1/nodes",
            json={
                "node_id": identity.node_id,
                "name": identity.name,
                "country": identity.country,
                "url": f"http://{node_id}.nodes.test",
                "public_jwk": identity.public_jwk,
            },
            headers=hub.headers("secretariat"),
        )
        assert response.status_code == 201, response.text
    return RealNodes(hub=hub, homes=homes, routes=routes)


def hub_transport(hub: Hub) -> httpx.MockTransport:
    """What a node's own (sync) client reaches the in-process hub app through: the hub's
    test client stands in for the network between a node and its hub."""

    def forward(request: httpx.Request) -> httpx.Response:
        response = hub.client.request(
            request.method, request.url.path, content=request.content, headers=request.headers
        )
        return httpx.Response(response.status_code, content=response.content)

    return httpx.MockTransport(forward)


def hub_database(hub: Hub) -> str:
    """Every row of every hub table, as text (for canary checks)."""
    engine = create_engine(hub.settings.effective_database_url)
    try:
        tables = inspect(engine).get_table_names()
        with engine.connect() as conn:
            return "\n".join(
                str(row) for t in tables for row in conn.execute(text(f'SELECT * FROM "{t}"'))
            )
    finally:
        engine.dispose()


def decoded(blob: str) -> str:
    """The blob plus the decoded payload of every compact JWS in it."""
    parts = [blob]
    for chunk in blob.replace("'", '"').split('"'):
        if chunk.count(".") == 2:
            segment = chunk.split(".")[1]
            try:
                parts.append(
                    base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)).decode(
                        errors="replace"
                    )
                )
            except ValueError:
                continue
    return "\n".join(parts)
