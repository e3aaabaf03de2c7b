"""Secure aggregation end to end in process: a hub and real node apps, over HTTP transports.

The hub runs both phases, restarts an attempt when a node drops out, records only the sum,
and falls back to per-node noise (saying so) where secure aggregation cannot run. Canary:
values planted in the nodes' raw data appear nowhere the hub can see.
"""

import base64
import json
import random
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import polars as pl
import pytest
from hub_support import DATASET, Hub, make_terms
from real_nodes_support import SEXES, NodeData, RealNodes, lnob_contract, start_real_nodes
from sqlalchemy import select, text

from contracts import signing
from contracts.v1 import Column, DatasetContract, Level, QueryRequest, Release, SecureContribution
from hub import home as hub_home_module
from hub.audit import service as hub_audit
from hub.audit.reconcile import Reconciliation, parse_export, reconcile
from hub.db import init_db, make_engine
from hub.home import HubIdentity
from hub.queries.models import QueryNodeRow
from hub.queries.secure_combine import fallback_query_id, vector
from node.audit import service as node_audit
from node.db import dispose_engines, transaction
from node.ledger.models import BudgetCharge
from node.privacy.secure import noise_plan
from node.settings import NodeSettings

COUNTRIES = {"ke-a": "404", "ke-b": "404", "np-c": "524"}
NUMBER_CANARY = 987654.125
TEXT_CANARY = "zq-secure-canary-5521"
RHO = 1.0


class Wire(httpx.AsyncBaseTransport):
    """A node app behind the hub's transport: records every exchange, fails on demand."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.failures: dict[str, int] = {}  # path -> how many calls still fail
        self.seen: list[bytes] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if self.failures.get(path, 0) > 0:
            self.failures[path] -= 1
            raise httpx.ConnectError("node down", request=request)
        response = await self.inner.handle_async_request(request)
        body = await response.aread()
        self.seen.append(request.content + b"\n" + body)
        return httpx.Response(response.status_code, headers=response.headers, content=body)


def contract() -> DatasetContract:
    return lnob_contract(
        Column(
            name="disability",
            type="categorical",
            levels=(Level(code="yes"), Level(code="no")),
        ),
        Column(name="income", type="number", role="measure", lower=0, upper=1_000_000),
        Column(name="comment", type="string", role="free_text"),
    )


def frame(rows: int, seed: int) -> pl.DataFrame:
    rnd = random.Random(seed)
    df = pl.DataFrame(
        {
            "respondent": [f"r{seed}-{i}" for i in range(rows)],
            "sex": [rnd.choice(SEXES) for _ in range(rows)],
            "disability": [rnd.choice(("yes", "no", "no")) for _ in range(rows)],
            "income": [float(rnd.randint(0, 5000)) for _ in range(rows)],
            "comment": ["" for _ in range(rows)],
        }
    )
    if seed == 1:  # the canaries live at one node
        row = pl.int_range(pl.len()) == 7
        df = df.with_columns(
            pl.when(row).then(pl.lit(NUMBER_CANARY)).otherwise(pl.col("income")).alias("income"),
            pl.when(row).then(pl.lit(TEXT_CANARY)).otherwise(pl.col("comment")).alias("comment"),
        )
    return df


@pytest.fixture
def nodes(
    tmp_path: Path, hub_home: HubIdentity, make_hub: Callable[..., Hub]
) -> Iterator[tuple[RealNodes, dict[str, Wire], pl.DataFrame]]:
    frames = {"ke-a": frame(300, 1), "ke-b": frame(200, 2), "np-c": frame(250, 3)}
    wires: dict[str, Wire] = {}

    def wrap(node_id: str, transport: httpx.AsyncBaseTransport) -> httpx.AsyncBaseTransport:
        wires[node_id] = Wire(transport)
        return wires[node_id]

    data = {n: NodeData(COUNTRIES[n], contract(), f) for n, f in frames.items()}
    real = start_real_nodes(tmp_path, hub_home, make_hub, data, wrap=wrap)
    yield real, wires, pl.concat(list(frames.values()))
    dispose_engines()


def agree(real: RealNodes, **overrides: Any) -> None:
    terms = make_terms(
        list(COUNTRIES.items()),
        measures=("count", "share", "sum", "mean"),
        columns=("disability", "income"),
        dims=("sex",),
        min_cell_size=0,
        rho_per_query_max=RHO,
        rho_budget=20.0,
        **{"aggregation": "secure", **overrides},
    )
    real.agree(terms)


def ask(hub: Hub, **fields: object) -> dict[str, Any]:
    spec = {"agreement_id": "lnob-2026", "dataset": DATASET, "rho": RHO, **fields}
    response = hub.client.post("/v1/queries", json=spec, headers=hub.headers("analyst"))
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


def charges(real: RealNodes, node_id: str) -> list[float]:
    home = real.homes[node_id]
    with transaction(NodeSettings(home=home).db_url) as session:
        return [c.rho for c in session.scalars(select(BudgetCharge))]


def stored_tasks(hub: Hub) -> list[QueryNodeRow]:
    engine = make_engine(hub.settings.effective_database_url)
    try:
        with init_db(engine)() as session:
            return list(session.scalars(select(QueryNodeRow)))
    finally:
        engine.dispose()


def test_count_share_and_sum_are_securely_aggregated(
    nodes: tuple[RealNodes, dict[str, Wire], pl.DataFrame],
) -> None:
    real, _wires, pooled = nodes
    agree(real)
    count = ask(real.hub, measure="count", group_by=["sex"])
    assert count["status"] == "complete", count["nodes"]
    assert count["aggregation"] == "secure"
    assert "1 attempt" in count["aggregation_note"]
    # Each member's guarantee and its own share of the noise are in the result.
    for node in count["nodes"]:
        assert (node["rho"], node["delta"]) == (RHO, 1e-7)
        assert node["epsilon"] > RHO
        assert node["mechanism"] == "discrete_gaussian"
        assert 0 <= node["noise_scale"] == node["components"][0]["scale"]
    for cell in count["cells"]:
        truth = pooled.filter(pl.col("sex") == cell["key"][0]).height
        assert cell["nodes"] == sorted(COUNTRIES)
        # Central noise at rho 1: sigma ~ 0.71; 8 is more than 10 sigma.
        assert abs(cell["estimate"] - truth) < 8
        assert cell["ci95_low"] < cell["estimate"] < cell["ci95_high"]
    share = ask(real.hub, measure="share", column="disability", value="yes", group_by=["sex"])
    assert share["aggregation"] == "secure"
    for cell in share["cells"]:
        part = pooled.filter(pl.col("sex") == cell["key"][0])
        truth = (part["disability"] == "yes").sum() / part.height
        assert abs(cell["estimate"] - truth) < 0.05
    total = ask(real.hub, measure="sum", column="income")
    assert total["aggregation"] == "secure"
    (cell,) = total["cells"]
    # The sum's noise: sigma ~ 1e6 / 2 / sqrt(2 * 2/3) ~ 4.3e5 (plus the count's share).
    assert abs(cell["estimate"] - pooled["income"].sum()) < 10 * 4.4e5
    for node_id in COUNTRIES:  # one charge of rho per query and node: one attempt each
        assert charges(real, node_id) == [RHO, RHO, RHO]


def test_the_hub_stores_only_masked_contributions(
    nodes: tuple[RealNodes, dict[str, Wire], pl.DataFrame],
) -> None:
    real, _wires, pooled = nodes
    agree(real)
    result = ask(real.hub, measure="count", group_by=["sex"])
    tasks = [t for t in stored_tasks(real.hub) if t.query_id == result["query_id"]]
    assert {t.node_id for t in tasks} == set(COUNTRIES)
    for task in tasks:
        assert task.mode == "secure"
        assert task.outcome == "ok"
        assert task.release is None  # no per-node release exists
        assert task.release_jws is not None
        contribution = SecureContribution.model_validate_json(
            signing.unverified_payload(task.release_jws)
        )
        for component in contribution.components:
            # Masked: the values are spread over Z / 2^64, not near any count (exact
            # counts are below the pooled size; 2 cells drawn uniformly fall within 1e6
            # of 0 or 2^64 with probability ~1e-13).
            values = vector(component.values).astype(np.float64)
            assert all(1e6 < v < 2.0**64 - 1e6 for v in values), pooled.height


def test_planted_values_reach_neither_wire_nor_hub(
    nodes: tuple[RealNodes, dict[str, Wire], pl.DataFrame],
) -> None:
    real, wires, _pooled = nodes
    agree(real)
    results = [
        ask(real.hub, measure="sum", column="income", group_by=["sex"]),
        ask(real.hub, measure="count", group_by=["sex"]),
        ask(real.hub, measure="share", column="disability", value="no"),
    ]
    assert all(r["aggregation"] == "secure" for r in results)
    canaries = [TEXT_CANARY, f"{NUMBER_CANARY}", "987654", "r1-7"]
    seen = b"\n".join(b for w in wires.values() for b in w.seen)
    traffic = _decoded(seen.decode())
    engine = make_engine(real.hub.settings.effective_database_url)
    try:
        with engine.connect() as conn:
            dump = "\n".join(
                str(row)
                for table in ("queries", "query_nodes", "audit_log")
                for row in conn.execute(text(f"SELECT * FROM {table}"))
            )
    finally:
        engine.dispose()
    everything = traffic + dump + json.dumps(results)
    for canary in canaries:
        assert canary not in everything


def test_a_dropout_in_phase_one_leaves_the_set(
    nodes: tuple[RealNodes, dict[str, Wire], pl.DataFrame],
) -> None:
    real, wires, _pooled = nodes
    agree(real)
    wires["np-c"].failures["/v1/secure/offers"] = 2  # the call and its retry
    result = ask(real.hub, measure="count")
    assert result["aggregation"] == "secure"
    assert result["status"] == "partial"
    outcomes = {n["node_id"]: n["outcome"] for n in result["nodes"]}
    assert outcomes == {"ke-a": "ok", "ke-b": "ok", "np-c": "failed"}
    assert result["cells"][0]["nodes"] == ["ke-a", "ke-b"]
    assert charges(real, "np-c") == []  # an offer charges nothing
    assert charges(real, "ke-a") == [RHO]


def test_a_dropout_in_phase_two_restarts_and_every_attempt_is_charged(
    nodes: tuple[RealNodes, dict[str, Wire], pl.DataFrame],
) -> None:
    real, wires, pooled = nodes
    agree(real)
    wires["np-c"].failures["/v1/secure/contributions"] = 2
    result = ask(real.hub, measure="count", group_by=["sex"])
    assert result["aggregation"] == "secure"
    assert "2 attempt" in result["aggregation_note"]
    outcomes = {n["node_id"]: n["outcome"] for n in result["nodes"]}
    assert outcomes == {"ke-a": "ok", "ke-b": "ok", "np-c": "failed"}
    # ke-a and ke-b contributed to attempt 1 (discarded) and attempt 2: both charged.
    assert charges(real, "ke-a") == [RHO, RHO]
    assert charges(real, "ke-b") == [RHO, RHO]
    assert charges(real, "np-c") == []
    # The published cells are the second attempt's sum over exactly its two members.
    two = pooled.head(300 + 200)
    for cell in result["cells"]:
        truth = two.filter(pl.col("sex") == cell["key"][0]).height
        assert abs(cell["estimate"] - truth) < 8


def test_dropouts_leaving_one_node_fall_back_to_per_node_noise(
    nodes: tuple[RealNodes, dict[str, Wire], pl.DataFrame],
) -> None:
    real, wires, _pooled = nodes
    agree(real)
    wires["np-c"].failures["/v1/secure/offers"] = 2
    wires["ke-b"].failures["/v1/secure/contributions"] = 2
    result = ask(real.hub, measure="count")
    assert result["aggregation"] == "per_node", (result["nodes"], result["aggregation_note"])
    assert "only one node remained" in result["aggregation_note"]
    outcomes = {n["node_id"]: n["outcome"] for n in result["nodes"]}
    assert outcomes == {"ke-a": "ok", "ke-b": "failed", "np-c": "failed"}
    # ke-a: attempt 1 (discarded) and its own per-node release.
    assert charges(real, "ke-a") == [RHO, RHO]
    # The hub never sends one query id in both modes: the plain request has a derived id
    # and no secure marker, and the hub's chain says so, so the logs still reconcile.
    (task,) = [
        t
        for t in stored_tasks(real.hub)
        if t.query_id == result["query_id"] and t.node_id == "ke-a"
    ]
    plain = QueryRequest.model_validate_json(signing.unverified_payload(task.request_jws))
    assert plain.query_id == fallback_query_id(uuid.UUID(result["query_id"]))
    assert plain.aggregation == "per_node"
    assert (
        Release.model_validate_json(signing.unverified_payload(str(task.release_jws))).query_id
        == plain.query_id
    )
    assert _reconciled(real).differences == []


def _reconciled(real: RealNodes) -> Reconciliation:
    engine = make_engine(real.hub.settings.effective_database_url)
    try:
        with init_db(engine)() as session:
            identity = hub_home_module.load_identity(real.hub.settings.home)
            hub_lines = "".join(hub_audit.export_jsonl(session=session, identity=identity))
    finally:
        engine.dispose()
    logs = [
        parse_export(list(node_audit.export_lines(home=home, settings=NodeSettings(home=home))))
        for home in real.homes.values()
    ]
    return reconcile(parse_export(hub_lines.splitlines()), logs)


def test_queries_secure_aggregation_does_not_cover_fall_back_and_say_why(
    nodes: tuple[RealNodes, dict[str, Wire], pl.DataFrame],
) -> None:
    real, _wires, _pooled = nodes
    agree(real)
    mean = ask(real.hub, measure="mean", column="income")
    assert mean["status"] == "complete"
    assert mean["aggregation"] == "per_node"
    assert "not mean" in mean["aggregation_note"]
    split = ask(real.hub, measure="count", group_by=["country"])
    assert split["aggregation"] == "per_node"
    assert "split by node or country" in split["aggregation_note"]


def test_per_node_agreements_are_untouched(
    nodes: tuple[RealNodes, dict[str, Wire], pl.DataFrame],
) -> None:
    real, wires, _pooled = nodes
    agree(real, aggregation="per_node")
    result = ask(real.hub, measure="count")
    assert result["aggregation"] == "per_node"
    assert result["aggregation_note"] is None
    assert not any(b"/v1/secure" in s for w in wires.values() for s in w.seen)


def test_collusion_parameter_sets_the_noise_plan(
    nodes: tuple[RealNodes, dict[str, Wire], pl.DataFrame],
) -> None:
    real, _wires, _pooled = nodes
    agree(real, collusion=1)
    result = ask(real.hub, measure="count", group_by=["sex"])
    assert result["aggregation"] == "secure"
    tasks = [t for t in stored_tasks(real.hub) if t.query_id == result["query_id"]]
    contributions = [
        SecureContribution.model_validate_json(signing.unverified_payload(str(t.release_jws)))
        for t in tasks
    ]
    plan = noise_plan(rho=RHO, members=3, collusion=1, dims=2, l1=1, l2=1)
    assert plan.adders >= 2  # any one colluder leaves at least one honest share
    for c in contributions:
        assert c.collusion == 1
        (component,) = c.components
        assert component.adders == plan.adders
        assert component.share_scale in (0.0, plan.scale)
    added = sum(1 for c in contributions if c.components[0].share_scale > 0)
    assert added == plan.adders


def _decoded(body: str) -> str:
    """The text plus, for every JWS in it, its decoded header and payload."""
    parts = [body]
    for chunk in body.replace("\n", '"').split('"'):
        if chunk.count(".") == 2:
            for segment in chunk.split(".")[:2]:
                padded = segment + "=" * (-len(segment) % 4)
                try:
                    parts.append(base64.urlsafe_b64decode(padded).decode(errors="replace"))
                except ValueError:
                    continue
    return "\n".join(parts)
