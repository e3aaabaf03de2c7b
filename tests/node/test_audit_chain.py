"""The node's audit log on SQLite and PostgreSQL: every kind of tampering, checkpoints, API."""

import json
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import delete, insert, select, update

from contracts import signing
from contracts.v1.audit import AuditCheckpoint, at_text, next_entry
from node.app import create_app
from node.audit import service as audit
from node.audit.exceptions import CheckpointNotPublished
from node.audit.models import AuditHead, AuditRow
from node.auth import service as auth
from node.db import transaction
from node.home import init_home, pin_hub
from node.settings import NodeSettings
from tests.node.conftest import AppClient


def _node(tmp_path: Path, db_url: str, entries: int = 8) -> NodeSettings:
    home = tmp_path / "home"
    init_home(home, name="Audit CSO", country="524", node_id="audit-cso")
    pin_hub(home, hub_id="test-hub", public_jwk=signing.public_jwk(signing.generate_key()))
    settings = NodeSettings(home=home, database_url=db_url)
    with transaction(db_url) as session:
        for i in range(entries):
            audit.append(
                session,
                actor="hub",
                action="decision",
                object=f"query:q{i}",
                details={"code": "accepted", "agreement_id": "mou-1"},
            )
    return settings


def _problem(settings: NodeSettings) -> tuple[str, int] | None:
    result = audit.verify(home=settings.home, settings=settings)
    return (result.problem.kind, result.problem.seq) if result.problem else None


def test_intact_chain_verifies(tmp_path: Path, db_url: str) -> None:
    settings = _node(tmp_path, db_url)
    assert _problem(settings) is None
    assert audit.verify_chain(database_url=db_url) is None


def test_edit_is_detected(tmp_path: Path, db_url: str) -> None:
    settings = _node(tmp_path, db_url)
    with transaction(db_url) as s:
        s.execute(update(AuditRow).where(AuditRow.seq == 4).values(actor="someone"))
    assert _problem(settings) == ("hash_mismatch", 4)


def test_delete_is_detected(tmp_path: Path, db_url: str) -> None:
    settings = _node(tmp_path, db_url)
    with transaction(db_url) as s:
        s.execute(delete(AuditRow).where(AuditRow.seq == 3))
    assert _problem(settings) == ("sequence_gap", 3)


def test_delete_and_renumber_is_detected(tmp_path: Path, db_url: str) -> None:
    settings = _node(tmp_path, db_url)
    with transaction(db_url) as s:
        s.execute(delete(AuditRow).where(AuditRow.seq == 3))
        for seq in range(4, 9):
            s.execute(update(AuditRow).where(AuditRow.seq == seq).values(seq=seq - 1))
    assert _problem(settings) == ("broken_link", 3)


def test_deleting_the_tail_is_detected_by_the_head(tmp_path: Path, db_url: str) -> None:
    settings = _node(tmp_path, db_url)
    with transaction(db_url) as s:
        s.execute(delete(AuditRow).where(AuditRow.seq >= 7))
    assert _problem(settings) == ("head_mismatch", 7)


def test_insert_is_detected(tmp_path: Path, db_url: str) -> None:
    settings = _node(tmp_path, db_url)
    with transaction(db_url) as s:
        rows = {r.seq: r for r in s.execute(select(AuditRow)).scalars()}
        s.expunge_all()
        for seq in range(8, 4, -1):
            s.execute(update(AuditRow).where(AuditRow.seq == seq).values(seq=seq + 1))
        # A well-formed forged entry after entry 4: entry 5 (was 4's successor) no longer links.
        forged = next_entry(
            prev_seq=4,
            prev_hash=rows[4].hash,
            at=datetime.fromisoformat(rows[4].at),
            actor="hub",
            action="budget_charged",
            object="query:forged",
            details={"rho": 0.1},
        )
        s.execute(
            insert(AuditRow).values(
                seq=5,
                at=at_text(forged.at),
                actor=forged.actor,
                action=forged.action,
                object=forged.object,
                details=json.dumps(forged.details),
                prev_hash=forged.prev_hash,
                hash=forged.hash,
            )
        )
    assert _problem(settings) == ("broken_link", 6)


def test_reorder_is_detected(tmp_path: Path, db_url: str) -> None:
    settings = _node(tmp_path, db_url)
    with transaction(db_url) as s:
        five, six = (s.get(AuditRow, n) for n in (5, 6))
        assert five is not None
        assert six is not None
        fields = ("at", "actor", "action", "object", "details", "prev_hash", "hash")
        a, b = ({f: getattr(r, f) for f in fields} for r in (five, six))
        s.execute(update(AuditRow).where(AuditRow.seq == 5).values(**b))
        s.execute(update(AuditRow).where(AuditRow.seq == 6).values(**a))
    assert _problem(settings) == ("broken_link", 5)


def test_checkpoint_catches_a_rewritten_past(tmp_path: Path, db_url: str) -> None:
    settings = _node(tmp_path, db_url)
    made = audit.make_checkpoint(home=settings.home, settings=settings)
    assert made.seq == 8
    assert _problem(settings) is None
    # The node rewrites its whole log consistently: the chain alone still verifies...
    with transaction(db_url) as s:
        rows = list(s.execute(select(AuditRow).order_by(AuditRow.seq)).scalars())
        prev_seq, prev_hash = 0, "0" * 64
        for row in rows:
            details = json.loads(row.details)
            if row.seq == 2:
                details["code"] = "budget_exhausted"
            entry = next_entry(
                prev_seq=prev_seq,
                prev_hash=prev_hash,
                at=datetime.fromisoformat(row.at),
                actor=row.actor,
                action=row.action,
                object=row.object,
                details=details,
            )
            row.details, row.prev_hash, row.hash = json.dumps(details), entry.prev_hash, entry.hash
            prev_seq, prev_hash = entry.seq, entry.hash
        head = s.get(AuditHead, 1)
        assert head is not None
        head.hash = prev_hash
    assert audit.verify_chain(database_url=db_url) is None
    # ...but it no longer matches the head it signed.
    assert _problem(settings) == ("checkpoint_mismatch", 8)


def test_forged_checkpoint_is_detected(tmp_path: Path, db_url: str) -> None:
    settings = _node(tmp_path, db_url)
    entries = audit.entries(database_url=db_url)
    forged = signing.sign(
        AuditCheckpoint(
            node_id="audit-cso",
            seq=8,
            hash=entries[-1].hash,
            signed_at=entries[-1].at,
        ),
        signing.generate_key(),
    )
    result = audit.verify(home=settings.home, settings=settings, hub_checkpoints=[forged])
    assert result.problem is not None
    assert result.problem.kind == "checkpoint_invalid"


def test_steward_audit_api(tmp_path: Path, db_url: str) -> None:
    settings = _node(tmp_path, db_url)
    token = auth.create_token(database_url=db_url, name="steward")
    client = AppClient(create_app(settings))
    bearer = {"Authorization": f"Bearer {token}"}

    def get(url: str, headers: dict[str, str] | None = None) -> object:
        return client.request("GET", url, headers=headers or {})

    for url in (
        "/v1/steward/audit/entries",
        "/v1/steward/audit/verify",
        "/v1/steward/audit/export",
    ):
        unauth = client.request("GET", url)
        assert unauth.status_code == 401
        assert unauth.json()["error"]["code"] == "unauthenticated"
    assert client.request("POST", "/v1/steward/audit/checkpoints").status_code == 401

    page = client.request(
        "GET", "/v1/steward/audit/entries", params={"query_id": "q3"}, headers=bearer
    )
    assert page.status_code == 200
    assert [e["object"] for e in page.json()] == ["query:q3"]
    limited = client.request("GET", "/v1/steward/audit/entries?limit=2&after_seq=2", headers=bearer)
    assert [e["seq"] for e in limited.json()] == [3, 4]

    for bad in ("limit=0", "limit=abc", "since=yesterday", "colour=red", "after_seq=-1"):
        response = client.request("GET", f"/v1/steward/audit/entries?{bad}", headers=bearer)
        assert response.status_code == 422, bad
        assert response.json()["error"]["code"] == "invalid_request"
    bad_format = client.request("GET", "/v1/steward/audit/export?format=xml", headers=bearer)
    assert bad_format.status_code == 422

    verified = client.request("GET", "/v1/steward/audit/verify", headers=bearer).json()
    assert verified["problem"] is None
    assert verified["owner_id"] == "audit-cso"

    made = client.request("POST", "/v1/steward/audit/checkpoints", headers=bearer)
    assert made.status_code == 201
    assert made.json()["seq"] >= 8

    jsonl = client.request("GET", "/v1/steward/audit/export", headers=bearer)
    lines = jsonl.text.splitlines()
    header = json.loads(lines[0])
    assert header["side"] == "node"
    assert header["complete"]
    assert len(header["checkpoints"]) == 1
    assert len(lines) - 1 == header["head_seq"]
    csv_text = client.request("GET", "/v1/steward/audit/export?format=csv", headers=bearer).text
    assert csv_text.splitlines()[0].startswith("seq,at,actor,action")
    # Taking a copy is itself recorded.
    actions = [e.action for e in audit.entries(database_url=db_url)]
    assert actions.count("audit_exported") == 2


def test_publish_without_a_pinned_hub_url_is_refused(tmp_path: Path) -> None:
    settings = _node(tmp_path, f"sqlite:///{tmp_path}/n.sqlite", entries=1)
    audit.make_checkpoint(home=settings.home, settings=settings)
    with pytest.raises(CheckpointNotPublished, match="no hub URL"):
        audit.publish_pending(home=settings.home, settings=settings)
