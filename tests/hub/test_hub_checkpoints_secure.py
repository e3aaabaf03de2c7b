"""Nodes that answer only secure-aggregation queries publish audit checkpoints too.

Real node apps behind an in-process hub, an agreement that aggregates securely, and nothing
but secure queries: each node signs checkpoints as its log grows and sends them to the hub,
which then holds a signed copy of every node's log (none overdue) and reconciles it with the
node's own export.
"""

import random
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import polars as pl
import pytest
from hub_support import DATASET, Hub, make_terms
from real_nodes_support import SEXES, NodeData, RealNodes, lnob_contract, start_real_nodes

from contracts.v1 import Column, Level
from hub.audit.reconcile import parse_export, reconcile
from hub.home import HubIdentity
from node.audit import checkpoints
from node.audit import service as node_audit
from node.db import dispose_engines
from node.settings import NodeSettings

COUNTRIES = {"ke-a": "404", "ke-b": "404", "np-c": "524"}
HUB_URL = "http://hub.test"
EVERY = 8
QUERIES = 6


class IntoHub(httpx.BaseTransport):
    """A node's own calls to the hub (publishing checkpoints), into the in-process hub app."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        answer = self.hub.client.request(
            request.method,
            request.url.raw_path.decode(),
            content=request.read(),
            headers={"content-type": "application/json"},
        )
        return httpx.Response(answer.status_code, content=answer.content)


def _frame(rows: int, seed: int) -> pl.DataFrame:
    rnd = random.Random(seed)
    return pl.DataFrame(
        {
            "respondent": [f"r{seed}-{i}" for i in range(rows)],
            "sex": [rnd.choice(SEXES) for _ in range(rows)],
            "disability": [rnd.choice(("yes", "no")) for _ in range(rows)],
        }
    )


@pytest.fixture
def secure_nodes(
    tmp_path: Path, hub_home: HubIdentity, make_hub: Callable[..., Hub]
) -> Iterator[tuple[RealNodes, dict[str, checkpoints.Checkpointer]]]:
    contract = lnob_contract(
        Column(name="disability", type="categorical", levels=(Level(code="yes"), Level(code="no")))
    )
    data = {
        node_id: NodeData(country, contract, _frame(150, seed))
        for seed, (node_id, country) in enumerate(COUNTRIES.items())
    }
    real = start_real_nodes(tmp_path, hub_home, make_hub, data, hub_url=HUB_URL)
    made = {}
    for node_id, home in real.homes.items():
        settings = NodeSettings(home=home, audit_checkpoint_every=EVERY)
        found = checkpoints.enable(settings, transport=IntoHub(real.hub))
        assert found is not None
        made[node_id] = found
    yield real, made
    for home in real.homes.values():
        checkpoints.disable(NodeSettings(home=home, audit_checkpoint_every=EVERY))
    dispose_engines()


def test_a_secure_aggregation_only_node_publishes_checkpoints(
    secure_nodes: tuple[RealNodes, dict[str, checkpoints.Checkpointer]],
) -> None:
    real, made = secure_nodes
    hub = real.hub
    terms = make_terms(
        list(COUNTRIES.items()),
        measures=("count", "share"),
        columns=("disability",),
        dims=("sex",),
        min_cell_size=0,
        aggregation="secure",
    )
    real.agree(terms)
    for _ in range(QUERIES):
        answer = hub.client.post(
            "/v1/queries",
            json={
                "agreement_id": terms.agreement_id,
                "dataset": DATASET,
                "measure": "count",
                "group_by": ["sex"],
                "rho": 0.1,
            },
            headers=hub.headers("analyst"),
        )
        assert answer.status_code == 201, answer.text
        assert answer.json()["aggregation"] == "secure"
    for checkpointer in made.values():
        checkpointer.wait()

    auditor = hub.headers("auditor")
    held = hub.client.get("/v1/audit/checkpoints", headers=auditor).json()
    exports = []
    for node_id, home in real.homes.items():
        settings = NodeSettings(home=home, audit_checkpoint_every=EVERY)
        head = node_audit.snapshot(database_url=settings.db_url).head[0]
        published = [c["seq"] for c in held if c["node_id"] == node_id]
        # Every node signed and published as its log grew: nothing older than EVERY entries
        # (plus the few a query appends at once) lacks a signed copy at the hub.
        assert len(published) >= head // (2 * EVERY), (node_id, published, head)
        assert head - max(published) < 2 * EVERY, (node_id, published, head)
        exports.append(parse_export(list(node_audit.export_lines(home=home, settings=settings))))
    status = hub.client.get("/v1/audit/checkpoints/status", headers=auditor).json()
    assert {s["node_id"]: s["overdue"] for s in status} == dict.fromkeys(COUNTRIES, False)

    hub_export = hub.client.get("/v1/audit/export", headers=auditor)
    result = reconcile(parse_export(hub_export.text.splitlines()), exports)
    assert result.differences == []
    assert all(v.checkpoints_checked > 0 for v in result.verifications[1:])
