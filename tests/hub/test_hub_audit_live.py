"""The hub's audit log while it works, on SQLite and PostgreSQL.

* `verify` checks the snapshot it reads first, so 100 appends meanwhile (real threads, each
  its own transaction, as the web and worker processes write) never look like tampering.
* One checkpoint posted twice at once is stored once (it was an IntegrityError, a 500).
* Nodes whose checkpoints are overdue are flagged: auditor API and reconciliation.
"""

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import pytest
from hub_support import DATASET, Hub, SimNode
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from contracts import signing
from contracts.v1.audit import AuditCheckpoint, AuditEntry, AuditVerification
from hub.audit import checkpoints
from hub.audit import service as audit
from hub.audit.models import CheckpointRow
from hub.db import init_db, make_engine
from hub.home import HubIdentity
from hub.settings import HubSettings

APPENDS = 100


@pytest.fixture
def sessions(hub_settings: HubSettings) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(hub_settings.effective_database_url)
    try:
        yield init_db(engine)
    finally:
        engine.dispose()


def _append(sessions: sessionmaker[Session], i: int) -> None:
    with sessions() as session:
        audit.append(
            session=session,
            actor="user:ana",
            action="query.submitted",
            object=f"query:q{i}",
            details={"agreement": "lnob-2026:v1", "nodes": ["ke-a"], "rho": 0.1},
        )
        session.commit()


def _verify(sessions: sessionmaker[Session], hub_home: HubIdentity) -> AuditVerification:
    with sessions() as session:
        return audit.verify(session=session, identity=hub_home)


def test_verify_while_100_appends_run(
    sessions: sessionmaker[Session], hub_home: HubIdentity
) -> None:
    first_done, verified_once = threading.Event(), threading.Event()

    def append(i: int) -> None:
        if i >= APPENDS // 2:
            verified_once.wait(60)
        _append(sessions, i)
        first_done.set()

    results: list[AuditVerification] = []
    with ThreadPoolExecutor(APPENDS) as pool:
        done = [pool.submit(append, i) for i in range(APPENDS)]
        first_done.wait(60)
        while not all(d.done() for d in done) or not results:
            results.append(_verify(sessions, hub_home))
            verified_once.set()
    for d in done:
        d.result()
    final = _verify(sessions, hub_home)
    assert final.ok
    assert final.entries == APPENDS
    assert [r.problem for r in results] == [None] * len(results)
    assert any(0 < r.head_seq < APPENDS for r in results)


def test_appends_during_a_verification_are_left_to_the_next_run(
    sessions: sessionmaker[Session], hub_home: HubIdentity, monkeypatch: pytest.MonkeyPatch
) -> None:
    _append(sessions, 0)
    original = audit.iter_entries
    appended = threading.Event()

    def appended_meanwhile(**kwargs: Any) -> Iterator[AuditEntry]:
        # Another connection commits entries after the head was read.
        worker = threading.Thread(target=lambda: [_append(sessions, i) for i in (1, 2)])
        worker.start()
        worker.join()
        appended.set()
        yield from original(**kwargs)

    monkeypatch.setattr(audit, "iter_entries", appended_meanwhile)
    with sessions() as session:
        during = audit.verify(session=session, identity=hub_home)
    assert appended.is_set()
    assert during.ok, during.problem
    assert during.head_seq == during.entries == 1
    monkeypatch.setattr(audit, "iter_entries", original)
    assert _verify(sessions, hub_home).entries == 3


def _checkpoint(node: SimNode, seq: int, digest: str) -> str:
    payload = AuditCheckpoint(
        node_id=node.node_id, seq=seq, hash=digest, signed_at=datetime.now(UTC)
    )
    return signing.sign(payload, node.key)


def test_one_checkpoint_posted_twice_at_once_is_stored_once(
    federation: Hub, sim_nodes: list[SimNode], sessions: sessionmaker[Session]
) -> None:
    token = _checkpoint(sim_nodes[0], 12, "e" * 64)
    racers = 8
    barrier = threading.Barrier(racers)

    def receive(_i: int) -> int:
        barrier.wait()
        with sessions() as session:
            return checkpoints.receive_checkpoint(session=session, node_id="ke-a", jws=token).seq

    with ThreadPoolExecutor(racers) as pool:
        assert list(pool.map(receive, range(racers))) == [12] * racers
    posted = federation.client.post("/v1/nodes/ke-a/audit/checkpoints", json={"jws": token})
    assert posted.status_code == 201
    with sessions() as session:
        stored = session.scalar(select(func.count()).select_from(CheckpointRow))
        received = [e.action for e in audit.entries(session=session)]
    assert stored == 1
    assert received.count("audit.checkpoint_received") == 1


def _status(hub: Hub) -> dict[str, dict[str, Any]]:
    response = hub.client.get("/v1/audit/checkpoints/status", headers=hub.headers("auditor"))
    assert response.status_code == 200, response.text
    return {s["node_id"]: s for s in response.json()}


def test_nodes_that_answer_without_checkpoints_are_flagged(
    federation: Hub, sim_nodes: list[SimNode]
) -> None:
    hub = federation
    spec = {"agreement_id": "lnob-2026", "dataset": DATASET, "measure": "count", "rho": 0.1}
    answers = 101  # each at least 2 node entries: 202 > HUB_CHECKPOINT_OVERDUE_ENTRIES (200)
    for _ in range(answers - 1):
        asked = hub.client.post("/v1/queries", json=spec, headers=hub.headers("analyst"))
        assert asked.status_code == 201, asked.text
    quiet = _status(hub)
    assert {n: (s["answers_since"], s["overdue"]) for n, s in quiet.items()} == {
        n.node_id: (answers - 1, False) for n in sim_nodes
    }
    assert hub.client.post("/v1/queries", json=spec, headers=hub.headers("analyst")).is_success
    # ke-a publishes a checkpoint; the others keep answering without one.
    token = _checkpoint(sim_nodes[0], 400, "f" * 64)
    assert hub.client.post("/v1/nodes/ke-a/audit/checkpoints", json={"jws": token}).is_success
    status = _status(hub)
    assert (status["ke-a"]["overdue"], status["ke-a"]["answers_since"]) == (False, 0)
    assert status["ke-a"]["newest_seq"] == 400
    for node in sim_nodes[1:]:
        assert status[node.node_id]["overdue"] is True
        assert status[node.node_id]["answers_since"] == answers
        assert status[node.node_id]["newest_seq"] is None
    refused = hub.client.get("/v1/audit/checkpoints/status", headers=hub.headers("analyst"))
    assert refused.status_code == 403
