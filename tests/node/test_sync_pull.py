"""Enrollment and pull mode from the node's side, against a real hub on a localhost port."""

import json
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from contracts import signing
from contracts.v1 import QueryRequest, QuerySpec, SignedAgreement, TaskRefusal
from hub import home as hub_home
from hub.app import create_app as create_hub_app
from hub.audit import service as hub_audit
from hub.auth.tokens import create_token
from hub.db import init_db, make_engine
from hub.nodes import service as federation
from hub.queries.models import QueryNodeRow
from hub.settings import HubSettings
from node import home as node_home
from node.agreements import service as node_agreements
from node.audit import checkpoints
from node.audit import service as audit
from node.datasets import service as node_datasets
from node.db import dispose_engines
from node.ledger import service as ledger
from node.settings import NodeSettings
from node.sync import service as sync
from node.sync.exceptions import EnrollmentFailed, NotEnrolled
from sauti.cli import app as sauti_app
from sauti.demo.data import demo_nodes
from sauti.demo.run import ANALYST_ORG, SECRETARIAT, demo_terms
from sauti.serve import serve_in_thread


@dataclass
class PullSetup:
    hub_url: str
    hub_settings: HubSettings
    home: Path
    agreement_id: str
    dataset: str
    analyst: dict[str, str]


def _token(settings: HubSettings, **kwargs: Any) -> str:
    engine = make_engine(settings.effective_database_url)
    try:
        with init_db(engine)() as s:
            return federation.create_enrollment_token(
                session=s, identity=hub_home.load_identity(settings.home), actor="test", **kwargs
            ).token
    finally:
        engine.dispose()


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[tuple[str, HubSettings]]:
    hub_home.init_home(tmp_path / "hub", hub_id="lnob-hub")
    settings = HubSettings(home=tmp_path / "hub", query_wait_seconds=0)
    with serve_in_thread(create_hub_app(settings)) as server:
        yield server.url, settings
    dispose_engines()


@pytest.fixture
def setup(tmp_path: Path, hub: tuple[str, HubSettings]) -> PullSetup:
    hub_url, settings = hub
    demo = demo_nodes(rows=400)[:1]
    node = demo[0]
    home = tmp_path / "node"
    node_home.init_home(home, name=node.organisation, country=node.country, node_id=node.node_id)
    node_datasets.import_frame(home=home, contract=node.contract, frame=node.frame)
    accepted = sync.enroll(
        home=home, hub_url=hub_url, token=_token(settings, node_id=node.node_id), mode="pull"
    )
    assert accepted.mode == "pull"
    identity = node_home.load_identity(home)
    assert identity.hub_url == hub_url
    assert identity.hub_public_jwk == hub_home.load_identity(settings.home).public_jwk
    engine = make_engine(settings.effective_database_url)
    try:
        with init_db(engine)() as s:
            sec = create_token(session=s, name="sec", organisation=SECRETARIAT, role="secretariat")
            ana = create_token(session=s, name="ana", organisation=ANALYST_ORG, role="analyst")
    finally:
        engine.dispose()
    terms = demo_terms(nodes=demo, hub_id="lnob-hub")
    with httpx.Client(base_url=hub_url, headers={"Authorization": f"Bearer {sec}"}) as client:
        created = client.post("/v1/agreements", json=terms.model_dump(mode="json"))
        assert created.status_code == 201, created.text
        signed = SignedAgreement.model_validate(created.json()["agreement"])
        signature = node_agreements.sign(home=home, agreement=signed)
        response = client.post(
            f"/v1/agreements/{terms.agreement_id}/signatures",
            json=signature.model_dump(mode="json"),
        )
        assert response.json()["status"] == "active"
    return PullSetup(
        hub_url=hub_url,
        hub_settings=settings,
        home=home,
        agreement_id=terms.agreement_id,
        dataset=node.contract.name,
        analyst={"Authorization": f"Bearer {ana}"},
    )


def _submit(setup: PullSetup, **params: Any) -> str:
    spec = {
        "agreement_id": setup.agreement_id,
        "dataset": setup.dataset,
        "measure": "count",
        "group_by": ["group"],
        "rho": 0.05,
    }
    response = httpx.post(
        f"{setup.hub_url}/v1/queries", json=spec, params=params, headers=setup.analyst
    )
    assert response.status_code == 202, response.text
    query_id: str = response.json()["query_id"]
    return query_id


def _result(setup: PullSetup, query_id: str) -> dict[str, Any]:
    response = httpx.get(
        f"{setup.hub_url}/v1/queries/{query_id}", params={"wait": 10}, headers=setup.analyst
    )
    body: dict[str, Any] = response.json()
    return body


def test_pull_node_answers_with_the_push_handler(setup: PullSetup) -> None:
    query_id = _submit(setup)
    settings = NodeSettings(home=setup.home)
    with httpx.Client() as client:
        stats = sync.poll_once(settings=settings, client=client, wait_seconds=5)
        assert (stats.received, stats.answered, stats.refused) == (1, 1, 0)
        result = _result(setup, query_id)
        assert result["status"] == "complete"
        assert result["cells"]
        # Answered: not handed out again; the node charged once.
        assert sync.poll_once(settings=settings, client=client, wait_seconds=0).received == 0
    (line,) = ledger.budget_report(home=setup.home)
    assert line.queries == 1


def test_refusal_carries_the_nodes_own_code(setup: PullSetup) -> None:
    node_agreements.suspend(home=setup.home, agreement_id=setup.agreement_id, reason="review")
    query_id = _submit(setup)
    with httpx.Client() as client:
        stats = sync.poll_once(
            settings=NodeSettings(home=setup.home), client=client, wait_seconds=5
        )
    assert stats.refused == 1
    result = _result(setup, query_id)
    assert result["status"] == "failed"
    (node,) = result["nodes"]
    assert (node["outcome"], node["error_code"]) == ("refused", "agreement_suspended")
    assert ledger.budget_report(home=setup.home)[0].queries == 0


def test_run_pull_loop_answers_until_stopped(setup: PullSetup) -> None:
    stop = threading.Event()
    totals: list[sync.PullStats] = []
    worker = threading.Thread(
        target=lambda: totals.append(
            sync.run_pull(settings=NodeSettings(home=setup.home), stop=stop, wait_seconds=1)
        )
    )
    worker.start()
    try:
        query_id = _submit(setup)
        assert _result(setup, query_id)["status"] == "complete"
    finally:
        stop.set()
        worker.join(30)
    assert totals[0].answered == 1


def _expired_task(hub_settings: HubSettings, node_id: str, *, key: Any = None) -> str:
    now = datetime.now(UTC)
    request = QueryRequest(
        query_id=uuid4(),
        hub_id="lnob-hub",
        node_id=node_id,
        agreement_id="a",
        agreement_version=1,
        agreement_digest="0" * 64,
        spec=QuerySpec(agreement_id="a", dataset="d", measure="count", rho=0.1),
        rho=0.1,
        issued_at=now - timedelta(days=8),
        expires_at=now - timedelta(days=1),
        nonce=secrets.token_hex(16),
    )
    return signing.sign(request, key or hub_home.load_key(hub_settings.home))


def test_expired_and_foreign_tasks_are_skipped_uncharged(setup: PullSetup) -> None:
    """A node back after a week answers only unexpired tasks; forged ones are never run."""
    node_id = node_home.load_identity(setup.home).node_id
    tasks = [
        _expired_task(setup.hub_settings, node_id),
        _expired_task(setup.hub_settings, node_id, key=signing.generate_key()),
    ]
    posted: list[str] = []

    def hub_stub(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/poll"):
            return httpx.Response(200, json={"tasks": [{"jws": t} for t in tasks]})
        posted.append(request.url.path)
        return httpx.Response(202, json={})

    with httpx.Client(transport=httpx.MockTransport(hub_stub)) as client:
        stats = sync.poll_once(settings=NodeSettings(home=setup.home), client=client)
    assert (stats.received, stats.skipped, stats.answered, stats.refused) == (2, 2, 0, 0)
    # No answer to either task; the signature the hub had not confirmed went with the poll.
    assert posted == ["/v1/agreements/signatures/deliver"]
    assert ledger.budget_report(home=setup.home)[0].queries == 0


def test_enrollment_refusals(tmp_path: Path, hub: tuple[str, HubSettings]) -> None:
    hub_url, settings = hub
    home = tmp_path / "n2"
    node_home.init_home(home, name="CSO two", country="404", node_id="ke-two")
    with pytest.raises(EnrollmentFailed, match="not a Sauti enrollment token"):
        sync.enroll(home=home, hub_url=hub_url, token="abc", mode="pull")
    token = _token(settings)
    forged = f"se1.{signing.key_id(signing.generate_key())}.{token.split('.')[2]}"
    with pytest.raises(EnrollmentFailed, match="enrollment_token_invalid"):
        sync.enroll(home=home, hub_url=hub_url, token=forged, mode="pull")
    with pytest.raises(EnrollmentFailed, match="needs --url"):
        sync.enroll(home=home, hub_url=hub_url, token=token, mode="push")
    with pytest.raises(NotEnrolled), httpx.Client() as client:
        sync.poll_once(settings=NodeSettings(home=home), client=client)
    assert node_home.load_identity(home).hub_id is None
    # The refusals did not use the token up.
    assert sync.enroll(home=home, hub_url=hub_url, token=token, mode="pull").node_id == "ke-two"


def test_cli_enroll_and_pull_fail_cleanly(tmp_path: Path) -> None:
    home = tmp_path / "n3"
    node_home.init_home(home, name="CSO three", country="524", node_id="np-three")
    runner = CliRunner()
    result = runner.invoke(
        sauti_app,
        ["node", "enroll", "--home", str(home), "--hub", "http://127.0.0.1:9", "--token", "x"],
    )
    assert result.exit_code == 1
    assert "enrollment_failed" in result.output
    assert "Traceback" not in result.output
    result = runner.invoke(sauti_app, ["node", "pull", "--home", str(home), "--once"])
    assert result.exit_code == 1
    assert "not_enrolled" in result.output


def _break_dataset(setup: PullSetup) -> tuple[Path, bytes]:
    """A poisoned task for real: the stored data file is damaged, so every release fails."""
    path = node_datasets.load(home=setup.home, name=setup.dataset).parquet_path
    original = path.read_bytes()
    path.write_bytes(b"PAR1 damaged on disk PAR1")
    return path, original


def _actions(home: Path, action: str) -> int:
    entries = audit.entries(database_url=NodeSettings(home=home).db_url)
    return sum(1 for e in entries if e.action == action)


def test_a_pull_node_survives_a_task_that_always_fails(setup: PullSetup) -> None:
    path, original = _break_dataset(setup)
    stop = threading.Event()
    totals: list[sync.PullStats] = []
    worker = threading.Thread(
        target=lambda: totals.append(
            sync.run_pull(settings=NodeSettings(home=setup.home), stop=stop, wait_seconds=1)
        )
    )
    worker.start()
    try:
        poisoned = _submit(setup)
        result = _result(setup, poisoned)
        assert result["status"] == "failed"
        (node,) = result["nodes"]
        assert (node["outcome"], node["error_code"]) == ("refused", "release_failed")
        # The loop is alive: once the file is repaired, the next query is answered.
        path.write_bytes(original)
        answered = _submit(setup)
        assert _result(setup, answered)["status"] == "complete"
    finally:
        stop.set()
        worker.join(30)
    assert not worker.is_alive()
    assert (totals[0].refused, totals[0].answered) == (1, 1)
    # Handed out once, failed once, its charge returned: only the second query is spent.
    assert _actions(setup.home, "release_failed") == 1
    assert _actions(setup.home, "budget_released") == 1
    (line,) = ledger.budget_report(home=setup.home)
    assert (line.queries, line.rho_spent) == (1, Decimal("0.05"))
    engine = make_engine(setup.hub_settings.effective_database_url)
    try:
        with init_db(engine)() as s:
            task = s.scalars(select(QueryNodeRow).where(QueryNodeRow.query_id == poisoned)).one()
            assert task.attempts == 1
    finally:
        engine.dispose()


def _live_task(setup: PullSetup) -> str:
    """A task the hub could have handed out: signed by its key, under the signed agreement."""
    identity = node_home.load_identity(setup.home)
    (record,) = node_agreements.list_agreements(home=setup.home)
    now = datetime.now(UTC)
    spec = QuerySpec(
        agreement_id=setup.agreement_id, dataset=setup.dataset, measure="count", rho=0.05
    )
    request = QueryRequest(
        query_id=uuid4(),
        hub_id="lnob-hub",
        node_id=identity.node_id,
        agreement_id=setup.agreement_id,
        agreement_version=record.version,
        agreement_digest=record.digest,
        spec=spec,
        rho=0.05,
        issued_at=now,
        expires_at=now + timedelta(hours=1),
        nonce=secrets.token_hex(16),
        analyst="ana",
        analyst_organisation=ANALYST_ORG,
    )
    return signing.sign(request, hub_home.load_key(setup.hub_settings.home))


class HubStub:
    """A hub that hands out the same task on every poll and never takes an answer."""

    def __init__(self, task: str) -> None:
        self.task = task
        self.refusals: list[TaskRefusal] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/poll"):
            return httpx.Response(200, json={"tasks": [{"jws": self.task}]})
        token = json.loads(request.content)["jws"]
        self.refusals.append(TaskRefusal.model_validate_json(signing.unverified_payload(token)))
        return httpx.Response(503, json={})


def test_a_refusal_the_hub_did_not_take_is_sent_again_not_recomputed(
    setup: PullSetup, monkeypatch: pytest.MonkeyPatch
) -> None:
    _break_dataset(setup)
    stub = HubStub(_live_task(setup))
    monkeypatch.setattr(sync, "POST_ATTEMPTS", 1)
    with httpx.Client(transport=httpx.MockTransport(stub)) as client:
        for _ in range(4):
            stats = sync.poll_once(settings=NodeSettings(home=setup.home), client=client)
            assert stats.undelivered == 1
    assert [r.code for r in stub.refusals] == ["release_failed"] * 4
    assert _actions(setup.home, "release_failed") == 1  # computed (and charged) once
    (line,) = ledger.budget_report(home=setup.home)
    assert line.queries == 0


def test_a_task_failing_unexpectedly_is_refused_after_three_tries(
    setup: PullSetup, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(**_kwargs: object) -> None:
        raise OSError("disk away")

    stub = HubStub(_live_task(setup))
    monkeypatch.setattr(sync, "POST_ATTEMPTS", 1)
    monkeypatch.setattr(sync, "handle_query", broken)
    settings = NodeSettings(home=setup.home)
    with httpx.Client(transport=httpx.MockTransport(stub)) as client:
        first = [sync.poll_once(settings=settings, client=client) for _ in range(2)]
        assert [s.failed for s in first] == [1, 1]
        assert stub.refusals == []  # perhaps transient: left for the hub to hand out again
        sync.poll_once(settings=settings, client=client)
    assert [r.code for r in stub.refusals] == [sync.TASK_FAILED]


def test_a_pull_node_publishes_checkpoints_of_what_it_answers(setup: PullSetup) -> None:
    """Pull answers append like push ones: checkpoints fall due and reach the hub."""
    settings = NodeSettings(home=setup.home, audit_checkpoint_every=4)
    made = checkpoints.enable(settings)  # as `sauti node pull` does for its settings
    assert made is not None
    try:
        asked = {_submit(setup) for _ in range(3)}
        answered = 0
        with httpx.Client() as client:
            for _ in range(5):
                answered += sync.poll_once(
                    settings=settings, client=client, wait_seconds=2
                ).answered
                if answered == len(asked):
                    break
        assert answered == len(asked)
        made.wait()
    finally:
        checkpoints.disable(settings)
    node_id = node_home.load_identity(setup.home).node_id
    engine = make_engine(setup.hub_settings.effective_database_url)
    try:
        with init_db(engine)() as session:
            held = [c.seq for c in hub_audit.list_checkpoints(session=session, node_id=node_id)]
    finally:
        engine.dispose()
    head = audit.snapshot(database_url=settings.db_url).head[0]
    assert len(held) >= 2
    assert head - max(held) < 2 * 4
