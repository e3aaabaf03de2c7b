"""The hub's side of issue #20, on SQLite and PostgreSQL (the `db_url` fixture).

* Bounds are checked before anything is signed or sent: a rho below the agreement's floor,
  a column filtered twice. No node is called.
* Requests signed for secure aggregation say so; plain ones are unchanged on the wire.
* A poisoned task never stops a worker: a release that verifies but cannot be combined
  fails its own query (readable, not a 500 on every read), a delivery that fails in the hub
  is recorded once instead of being resent until the deadline, the sweeper completes other
  queries past one that fails, and the Celery tasks record or log a failure, never raise.
"""

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hub_support import ANALYST_ORG, Hub, SimNode, count_cell, make_terms
from sqlalchemy import select

from contracts import signing
from contracts.v1 import QuerySpec
from hub.auth.schemas import User
from hub.db import init_db, make_engine
from hub.home import load_identity, load_key
from hub.queries import dispatch, secure, service, worker
from hub.queries import push as fanout
from hub.queries.models import QueryNodeRow, QueryRow
from hub.queries.planning import NodeTarget, plan_query
from hub.queries.signals import Signals
from hub.settings import HubSettings

ANALYST = User(name="ana", organisation=ANALYST_ORG, role="analyst")


def ask(hub: Hub, **fields: Any) -> Any:
    spec = {
        "agreement_id": "lnob-2026",
        "dataset": "lnob_household",
        "measure": "count",
        "group_by": ["sex"],
        "rho": 0.2,
        **fields,
    }
    return hub.client.post("/v1/queries", json=spec, headers=hub.headers("analyst"))


def test_bounds_are_refused_before_any_node_is_asked(
    federation: Hub, sim_nodes: list[SimNode]
) -> None:
    low = ask(federation, rho=5e-5)
    assert low.status_code == 422, low.text
    assert low.json()["error"]["code"] == "rho_below_floor"
    twice = ask(
        federation,
        filters=[{"column": "sex", "levels": ["male"]}, {"column": "sex", "levels": ["female"]}],
    )
    assert twice.status_code == 422, twice.text
    assert twice.json()["error"]["code"] == "invalid_spec"
    assert [n.calls for n in sim_nodes] == [0, 0, 0]


def test_secure_requests_are_marked_and_plain_ones_unchanged() -> None:
    key = signing.generate_key()
    targets = [NodeTarget("ke-a", "404", "http://ke-a", signing.public_jwk(key))]
    spec = QuerySpec(agreement_id="lnob-2026", dataset="lnob_household", measure="count", rho=0.2)
    terms = make_terms([("ke-a", "404")])
    plans = {
        mode: plan_query(
            query_id=uuid.uuid4(),
            spec=spec,
            terms=terms,
            agreement_digest=signing.digest(terms),
            targets=targets,
            hub_id="h",
            key=key,
            now=datetime.now(UTC),
            ttl_seconds=60,
            aggregation=mode,
        )
        for mode in ("per_node", "secure")
    }
    plain = signing.unverified_payload(plans["per_node"].calls[0].jws).decode()
    marked = signing.unverified_payload(plans["secure"].calls[0].jws).decode()
    assert "aggregation" not in plain  # the canonical JSON of every plain request as before
    assert '"aggregation":"secure"' in marked


def test_a_release_that_cannot_be_combined_fails_only_its_own_query(
    federation: Hub, sim_nodes: list[SimNode]
) -> None:
    good = dict(sim_nodes[0].cells)
    # Signed and answering the request, but with a key the query's dims cannot hold.
    sim_nodes[0].cells = {(): count_cell((), 5.0)}
    poisoned = ask(federation)
    assert poisoned.status_code == 201, poisoned.text
    result = poisoned.json()
    assert (result["status"], result["cells"]) == ("failed", [])
    assert "could not be combined" in result["aggregation_note"]
    read = federation.client.get(
        f"/v1/queries/{result['query_id']}", headers=federation.headers("analyst")
    )
    assert read.status_code == 200
    assert read.json()["status"] == "failed"
    sim_nodes[0].cells = good
    assert ask(federation).json()["status"] == "complete"


def test_a_delivery_failing_in_the_hub_is_recorded_not_resent(
    federation: Hub, sim_nodes: list[SimNode], monkeypatch: pytest.MonkeyPatch
) -> None:
    real = fanout.post_with_retries

    async def poisoned(**kwargs: Any) -> fanout.CallOutcome:
        if kwargs["call"].node_id == "ke-a":
            raise RuntimeError("a bug in the hub")
        return await real(**kwargs)

    monkeypatch.setattr(fanout, "post_with_retries", poisoned)
    result = ask(federation).json()
    assert result["status"] == "partial"
    outcomes = {n["node_id"]: (n["outcome"], n["error_code"]) for n in result["nodes"]}
    assert outcomes["ke-a"] == ("failed", fanout.DELIVERY_FAILED)
    assert [n.calls for n in sim_nodes] == [0, 1, 1]


def _prepare(settings: HubSettings, *, agreement_id: str = "lnob-2026", past: bool) -> str:
    spec = QuerySpec(agreement_id=agreement_id, dataset="lnob_household", measure="count", rho=0.2)
    engine = make_engine(settings.effective_database_url)
    try:
        with init_db(engine)() as session:
            prepared = service.prepare_query(
                session=session,
                spec=spec,
                user=ANALYST,
                identity=load_identity(settings.home),
                key=load_key(settings.home),
                ttl_seconds=60,
                max_ttl_seconds=settings.max_request_ttl_seconds,
                now=datetime.now(UTC) - timedelta(minutes=10) if past else None,
            )
            return str(prepared.query_id)
    finally:
        engine.dispose()


def _status(settings: HubSettings, query_id: str) -> str:
    engine = make_engine(settings.effective_database_url)
    try:
        with init_db(engine)() as session:
            row = session.get(QueryRow, query_id)
            assert row is not None
            return row.status
    finally:
        engine.dispose()


def test_the_sweeper_completes_other_queries_past_one_that_fails(
    federation: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = federation.settings
    stuck, other = _prepare(settings, past=True), _prepare(settings, past=True)
    real = service.finalize_due

    def poisoned(*, session: Any, query_id: str, now: datetime | None = None) -> bool:
        if query_id == stuck:
            raise RuntimeError("cannot complete")
        return real(session=session, query_id=query_id, now=now)

    monkeypatch.setattr(service, "finalize_due", poisoned)

    class NoResend:
        async def redeliver(self, *, tasks: Any) -> None:
            return None

    engine = make_engine(settings.effective_database_url)
    try:
        sweeper = dispatch.Sweeper(
            sessions=init_db(engine),
            dispatcher=NoResend(),  # type: ignore[arg-type]
            signals=Signals(),
            after=60,
        )
        asyncio.run(sweeper.sweep())
    finally:
        engine.dispose()
    assert _status(settings, stuck) == "running"
    assert _status(settings, other) == "failed"  # completed: every node timed out


@pytest.fixture
def celery_app(federation: Hub) -> Any:
    settings = federation.settings.model_copy(
        update={"celery_broker_url": "redis://127.0.0.1:6379/15"}
    )
    return worker.create_celery(settings)  # never connects: tasks are run in process


def test_celery_tasks_log_and_record_instead_of_raising(
    federation: Hub,
    sim_nodes: list[SimNode],
    celery_app: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(**_kwargs: object) -> None:
        raise RuntimeError("poisoned")

    monkeypatch.setattr(fanout, "deliver", broken)
    monkeypatch.setattr(service, "finalize_due", broken)
    assert celery_app.tasks[dispatch.DELIVER_TASK].run("q", "ke-a") is False
    assert celery_app.tasks[dispatch.DELIVER_MANY_TASK].run("q", ["ke-a", "ke-b"]) == 0
    assert celery_app.tasks[dispatch.FINALIZE_TASK].run("q") is False
    # A secure query whose run fails in the hub: closed as failed, not left to its deadline.
    secure_terms = make_terms(sim_nodes, agreement_id="lnob-secure", aggregation="secure")
    assert federation.agree(secure_terms)["status"] == "active"
    query_id = _prepare(federation.settings, agreement_id="lnob-secure", past=False)
    monkeypatch.setattr(secure, "run", broken)
    assert celery_app.tasks[dispatch.SECURE_TASK].run(query_id) is None
    engine = make_engine(federation.settings.effective_database_url)
    try:
        with init_db(engine)() as session:
            tasks = session.scalars(
                select(QueryNodeRow).where(QueryNodeRow.query_id == query_id)
            ).all()
            assert {(t.mode, t.outcome, t.error_code) for t in tasks} == {
                ("secure", "failed", secure.SECURE_FAILED)
            }
            row = session.get(QueryRow, query_id)
            assert row is not None
            assert row.status == "failed"
    finally:
        engine.dispose()
