"""A worker process's answers recorded together (group commit), on SQLite and PostgreSQL, and
progress recorded by one process waking the waiters of another (PostgreSQL notifications).

* Answers to several queries handed to one `Recorder` at once: each task closes once (a
  duplicate in the same batch is refused), each query completes once, with one outcome
  entry per node and one completion entry, and the hub's chain verifies.
* A `CallLoader` reads the deliveries of several queries together; closed ones are None.
* A completed result is served from this process's memory only once its transaction
  commits, and its response body is the JSON the database holds.
* A notification is sent only by a transaction that commits, and wakes the waiters of that
  query in a process that listens.
"""

import asyncio
import json
import threading
from collections import Counter
from collections.abc import Iterator
from uuid import UUID

import pytest
from hub_support import ANALYST_ORG, Hub
from sqlalchemy import Engine, event, select, text

from contracts.v1 import QueryResult, QuerySpec, Release
from hub.audit import service as audit
from hub.auth.schemas import User
from hub.db import init_db, make_engine
from hub.home import load_identity, load_key
from hub.queries import service
from hub.queries.batching import Batcher, CallLoader
from hub.queries.models import QueryNodeRow, QueryRow
from hub.queries.progress import ProgressListener, announce
from hub.queries.recorder import Recorder
from hub.queries.releases import parsed_releases
from hub.queries.signals import Signals, query_key
from hub.settings import HubSettings

ANALYST = User(name="ana", organisation=ANALYST_ORG, role="analyst")
_SPEC = {"agreement_id": "lnob-2026", "dataset": "lnob_household", "measure": "count", "rho": 0.2}


def _prepare(settings: HubSettings) -> tuple[str, list[str]]:
    spec = QuerySpec(agreement_id="lnob-2026", dataset="lnob_household", measure="count", rho=0.2)
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
            )
            return str(prepared.query_id), list(prepared.push_nodes)
    finally:
        engine.dispose()


def test_answers_to_several_queries_recorded_together_close_each_task_once(
    federation: Hub,
) -> None:
    settings = federation.settings
    queries = [_prepare(settings) for _ in range(3)]
    outcomes = [
        service.Outcome(
            query_id=query_id,
            node_id=node_id,
            outcome="refused",
            error_code="budget_exhausted",
            message="no budget left",
        )
        for query_id, nodes in queries
        for node_id in nodes
    ]
    duplicate = outcomes[0]
    engine = make_engine(settings.effective_database_url)
    try:
        sessions = init_db(engine)

        async def run() -> tuple[list[bool], list[object]]:
            loader = CallLoader(sessions=sessions)
            recorder = Recorder(sessions=sessions)
            wanted = [(o.query_id, o.node_id) for o in outcomes]
            calls = await asyncio.gather(*(loader.load(q, n) for q, n in wanted))
            stored = await asyncio.gather(*(recorder.record(o) for o in [*outcomes, duplicate]))
            again = await asyncio.gather(*(loader.load(q, n) for q, n in wanted[:2]))
            await recorder.close()
            await loader.close()
            assert [(c.query_id, c.node_id) for c in calls if c is not None] == wanted
            return stored, list(again)

        stored, again = asyncio.run(run())
        # Each answer is stored once; the duplicate handed in with them is refused, and
        # closed tasks are no longer deliveries to make.
        assert stored == [True] * len(outcomes) + [False]
        assert again == [None, None]
        with sessions() as session:
            for query_id, _ in queries:
                row = session.get(QueryRow, query_id)
                assert row is not None
                assert row.completed_at is not None
                tasks = session.scalars(
                    select(QueryNodeRow).where(QueryNodeRow.query_id == query_id)
                ).all()
                assert {t.outcome for t in tasks} == {"refused"}
            entries = audit.entries(session=session)
            assert audit.verify_chain(session=session) is None
        actions = Counter((e.action, e.object) for e in entries)
        for query_id, nodes in queries:
            assert actions[("query.node_outcome", f"query:{query_id}")] == len(nodes)
            assert actions[("query.completed", f"query:{query_id}")] == 1
        # Per query in the chain: its outcomes, then its completion.
        for query_id, _ in queries:
            mine = [e.action for e in entries if e.object == f"query:{query_id}"]
            assert mine[-1] == "query.completed"
            assert "query.completed" not in mine[:-1]
    finally:
        engine.dispose()


@pytest.fixture
def pg_engine(postgres_url: str) -> Iterator[Engine]:
    engine = make_engine(postgres_url)
    yield engine
    engine.dispose()


def test_committed_progress_wakes_waiters_in_a_listening_process(pg_engine: Engine) -> None:
    assert ProgressListener.wanted(pg_engine)
    sessions = init_db(pg_engine)
    signals = Signals()
    listener = ProgressListener(engine=pg_engine, signals=signals)
    listener.start()
    try:
        listening = threading.Event()

        async def run() -> bool:
            while not signals.remote_progress:
                await asyncio.sleep(0.05)
            listening.set()
            with (
                signals.listen(query_key("committed")) as woken,
                signals.listen(query_key("rolled-back")) as other,
            ):

                def write() -> None:
                    with sessions() as session:
                        announce(session, ["rolled-back"])
                        session.rollback()
                    with sessions() as session:
                        announce(session, ["committed"])
                        session.commit()

                await asyncio.to_thread(write)
                await asyncio.wait_for(woken.wait(), timeout=30)
                # Notifications arrive in commit order: one from the rolled-back
                # transaction would have come first.
                return other.is_set()

        assert asyncio.run(asyncio.wait_for(run(), timeout=60)) is False
        assert listening.is_set()
    finally:
        listener.close()
    assert signals.remote_progress is False


def test_a_listener_cut_off_reconnects_and_stops_when_closed(pg_engine: Engine) -> None:
    """The database drops the listening connection: waiters are woken (they re-read), the
    listener reconnects and hears later progress; closed, its thread has ended."""
    sessions = init_db(pg_engine)
    signals = Signals()
    listener = ProgressListener(engine=pg_engine, signals=signals)
    listener.start()
    try:

        async def run() -> None:
            while not signals.remote_progress:
                await asyncio.sleep(0.05)
            with signals.listen(query_key("cut")) as cut:

                def terminate() -> None:
                    with pg_engine.connect() as connection:
                        connection.execute(
                            text(
                                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                                " WHERE datname = current_database() AND query LIKE 'LISTEN %'"
                            )
                        )

                await asyncio.to_thread(terminate)
                await asyncio.wait_for(cut.wait(), timeout=30)  # woken to re-read
            while not signals.remote_progress:  # listening again
                await asyncio.sleep(0.05)
            with signals.listen(query_key("later")) as later:

                def write() -> None:
                    with sessions() as session:
                        announce(session, ["later"])
                        session.commit()

                await asyncio.to_thread(write)
                await asyncio.wait_for(later.wait(), timeout=30)

        asyncio.run(asyncio.wait_for(run(), timeout=60))
    finally:
        listener.close()
    assert listener._thread is not None
    assert not listener._thread.is_alive()


def test_a_completed_result_is_served_from_memory_only_once_its_transaction_commits(
    federation: Hub,
) -> None:
    """The submitter is served the result its process completed without reading the
    database, so that result is remembered only after the recording transaction commits;
    the response body is the JSON the database holds."""
    settings = federation.settings
    query_id, nodes = _prepare(settings)
    outcomes = [
        service.Outcome(
            query_id=query_id,
            node_id=node_id,
            outcome="refused",
            error_code="budget_exhausted",
            message="no budget left",
        )
        for node_id in nodes
    ]
    engine = make_engine(settings.effective_database_url)
    try:
        sessions = init_db(engine)

        def refuse_commit(session: object) -> None:
            raise RuntimeError("the disk is full")

        with sessions() as session:
            event.listen(session, "before_commit", refuse_commit)
            with pytest.raises(RuntimeError):
                service.record_outcomes(session=session, outcomes=outcomes)
        assert service.completed_here(UUID(query_id)) is None
        with sessions() as session:
            assert service.record_outcomes(session=session, outcomes=outcomes) == [True] * len(
                outcomes
            )
        result = service.completed_here(UUID(query_id))
        assert result is not None
        assert result.status != "running"
        with sessions() as session:
            row = session.get(QueryRow, query_id)
            assert row is not None
            assert row.status == result.status
            assert json.loads(service.result_body(result)) == row.result
        assert QueryResult.model_validate_json(service.result_body(result)) == result
    finally:
        engine.dispose()


def test_a_caller_cancelled_mid_run_leaves_the_run_to_finish_once() -> None:
    started, release = threading.Event(), threading.Event()
    runs: list[list[int]] = []

    def work(items: list[int]) -> list[int]:
        started.set()
        release.wait(5)
        runs.append(items)
        return [i * 10 for i in items]

    async def run() -> tuple[bool, int]:
        batcher: Batcher[int, int] = Batcher(work)
        caller = asyncio.ensure_future(batcher.run(1))
        while not started.is_set():
            await asyncio.sleep(0.01)
        caller.cancel()
        await asyncio.gather(caller, return_exceptions=True)
        release.set()
        after = await batcher.run(2)  # the next run starts once the first one finished
        await batcher.close()
        return caller.cancelled(), after

    cancelled, after = asyncio.run(run())
    assert cancelled
    assert after == 20
    assert runs == [[1], [2]]  # the cancelled caller's item ran once, whole


def test_a_query_completes_only_with_its_last_task_whatever_the_batch_holds(
    federation: Hub,
) -> None:
    """Which queries a batch completes is read with its open tasks: a query whose other
    node answers only another query of the batch (that node is in the batch, not its
    answer), or whose other node is not in the batch at all, stays running; the batch
    that closes its last task completes it, once."""
    settings = federation.settings
    (first, nodes), (second, others) = _prepare(settings), _prepare(settings)
    assert nodes == others
    assert len(nodes) >= 2

    def answer(query_id: str, node_id: str) -> service.Outcome:
        return service.Outcome(
            query_id=query_id,
            node_id=node_id,
            outcome="refused",
            error_code="budget_exhausted",
            message="no budget left",
        )

    engine = make_engine(settings.effective_database_url)
    try:
        sessions = init_db(engine)

        def completed(query_id: str) -> bool:
            with sessions() as session:
                row = session.get(QueryRow, query_id)
                assert row is not None
                return row.completed_at is not None

        # Node 0 answers the first query, node 1 the second: each query still waits for
        # a node that is in the batch.
        with sessions() as session:
            stored = service.record_outcomes(
                session=session, outcomes=[answer(first, nodes[0]), answer(second, nodes[1])]
            )
        assert stored == [True, True]
        assert not completed(first)
        assert not completed(second)
        # Every other node of the first query answers it (and a duplicate): it completes;
        # the second still waits for node 0, which is not in this batch at all.
        rest = [answer(first, node_id) for node_id in nodes[1:]]
        with sessions() as session:
            stored = service.record_outcomes(
                session=session, outcomes=[*rest, answer(first, nodes[0])]
            )
        assert stored == [True] * len(rest) + [False]
        assert completed(first)
        assert not completed(second)
        rest = [answer(second, node_id) for node_id in nodes if node_id != nodes[1]]
        with sessions() as session:
            assert service.record_outcomes(session=session, outcomes=rest) == [True] * len(rest)
        assert completed(second)
        with sessions() as session:
            entries = audit.entries(session=session)
            assert audit.verify_chain(session=session) is None
        actions = Counter((e.action, e.object) for e in entries)
        for query_id in (first, second):
            assert actions[("query.completed", f"query:{query_id}")] == 1
            assert actions[("query.node_outcome", f"query:{query_id}")] == len(nodes)
    finally:
        engine.dispose()


def test_a_query_closed_in_one_batch_is_combined_as_from_its_stored_tasks(
    federation: Hub,
) -> None:
    """A query whose every task closes in one batch is combined from what the batch read:
    the stored result is the one its stored tasks give."""
    settings = federation.settings
    query_id, nodes = _prepare(settings)
    outcomes = [
        service.Outcome(
            query_id=query_id,
            node_id=node_id,
            outcome="refused" if n % 2 else "failed",
            error_code="budget_exhausted" if n % 2 else "node_error",
            message=f"reason {n}",
        )
        for n, node_id in enumerate(reversed(nodes))
    ]
    engine = make_engine(settings.effective_database_url)
    try:
        sessions = init_db(engine)
        with sessions() as session:
            assert service.record_outcomes(session=session, outcomes=outcomes) == [True] * len(
                nodes
            )
        with sessions() as session:
            row = session.get(QueryRow, query_id)
            assert row is not None
            assert row.completed_at is not None
            rebuilt = service._build(row, service._tasks_to_combine(session, row))
            assert row.result == rebuilt.model_dump(mode="json")
            assert [n.node_id for n in rebuilt.nodes] == nodes
    finally:
        engine.dispose()


def test_releases_evicted_from_the_cache_before_combining_are_still_combined(
    federation: Hub,
) -> None:
    """`parsed_releases` is bounded and shared by the process's threads: a query's releases
    may be evicted (another query's answers) after its tasks were read (which then skipped
    their stored releases) and before they are combined. The tasks carry the releases they
    were read with, so no answer is dropped from the result."""
    spec = {**_SPEC, "group_by": ["sex"]}
    response = federation.client.post(
        "/v1/queries", json=spec, headers=federation.headers("analyst")
    )
    assert response.status_code == 201, response.text
    result = response.json()
    assert result["status"] == "complete"
    query_id = result["query_id"]
    engine = make_engine(federation.settings.effective_database_url)
    try:
        with init_db(engine)() as session:
            row = session.get(QueryRow, query_id)
            assert row is not None
            for task in service._tasks_to_combine(session, row):
                if task.release is not None:
                    parsed_releases.remember(
                        query_id, task.node_id, Release.model_validate(task.release)
                    )
            tasks = service._tasks_to_combine(session, row)
            answered = [t for t in tasks if t.outcome == "ok"]
            assert len(answered) >= 2
            assert all(t.release is None for t in answered)  # taken from the cache
            parsed_releases.forget(query_id)  # evicted before combining
            rebuilt = service._build(row, tasks)
            assert row.result == rebuilt.model_dump(mode="json")
            assert rebuilt.status == "complete"
    finally:
        engine.dispose()
