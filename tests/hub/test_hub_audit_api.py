"""The hub's audit log: tampering on SQLite and PostgreSQL, auditor API, node checkpoints."""

import json
from datetime import UTC, datetime

from hub_support import Hub, SimNode
from sqlalchemy import delete, insert, select, update
from sqlalchemy.orm import Session

from contracts import signing
from contracts.v1.audit import AuditCheckpoint, at_text, next_entry
from hub.audit import service as audit
from hub.audit.models import AuditRow
from hub.home import HubIdentity


def _chain(session: Session, entries: int = 8) -> None:
    for i in range(entries):
        audit.append(
            session=session,
            actor="user:ana",
            action="query.submitted",
            object=f"query:q{i}",
            details={"agreement": "lnob-2026:v1", "nodes": ["ke-a"], "rho": 0.1},
        )
    session.commit()


def _problem(session: Session, hub_home: HubIdentity) -> tuple[str, int] | None:
    result = audit.verify(session=session, identity=hub_home)
    return (result.problem.kind, result.problem.seq) if result.problem else None


def test_every_kind_of_tampering_names_the_first_bad_entry(
    session: Session, hub_home: HubIdentity
) -> None:
    _chain(session)
    assert _problem(session, hub_home) is None
    # Edit.
    row = session.get(AuditRow, 6)
    assert row is not None
    original = row.details
    row.details = json.dumps({"rho": 0.0})
    session.commit()
    assert _problem(session, hub_home) == ("hash_mismatch", 6)
    row.details = original
    session.commit()
    assert _problem(session, hub_home) is None
    # Reorder: entries 3 and 4 swap places.
    fields = ("at", "actor", "action", "object", "details", "prev_hash", "hash")
    three, four = session.get(AuditRow, 3), session.get(AuditRow, 4)
    assert three is not None
    assert four is not None
    a, b = ({f: getattr(r, f) for f in fields} for r in (three, four))
    session.expunge_all()
    session.execute(update(AuditRow).where(AuditRow.seq == 3).values(**b))
    session.execute(update(AuditRow).where(AuditRow.seq == 4).values(**a))
    session.commit()
    assert _problem(session, hub_home) == ("broken_link", 3)
    session.execute(update(AuditRow).where(AuditRow.seq == 3).values(**a))
    session.execute(update(AuditRow).where(AuditRow.seq == 4).values(**b))
    session.commit()
    # Insert a well-formed entry at the end, without moving the head.
    last = session.scalars(select(AuditRow).where(AuditRow.seq == 8)).one()
    forged = next_entry(
        prev_seq=8,
        prev_hash=last.hash,
        at=datetime.now(UTC),
        actor="hub",
        action="query.completed",
        object="query:forged",
        details={},
    )
    session.execute(
        insert(AuditRow).values(
            seq=9,
            at=at_text(forged.at),
            actor=forged.actor,
            action=forged.action,
            object=forged.object,
            details="{}",
            prev_hash=forged.prev_hash,
            hash=forged.hash,
        )
    )
    session.commit()
    assert _problem(session, hub_home) == ("head_mismatch", 9)
    # Delete in the middle.
    session.execute(delete(AuditRow).where(AuditRow.seq.in_((2, 9))))
    session.commit()
    assert _problem(session, hub_home) == ("sequence_gap", 2)


def test_auditor_api_searches_exports_and_verifies(federation: Hub) -> None:
    client = federation.client
    for role in ("auditor", "admin"):
        page = client.get(
            "/v1/audit/entries?action=node.registered", headers=federation.headers(role)
        )
        assert page.status_code == 200
        assert [e["object"] for e in page.json()["entries"]] == [
            "node:ke-a",
            "node:ke-b",
            "node:np-a",
        ]
    by_node = client.get("/v1/audit/entries?node_id=np-a", headers=federation.headers("auditor"))
    assert {e["object"] for e in by_node.json()["entries"]} >= {"node:np-a"}
    by_agreement = client.get(
        "/v1/audit/entries?agreement_id=lnob-2026&limit=2", headers=federation.headers("auditor")
    ).json()
    assert len(by_agreement["entries"]) == 2
    assert by_agreement["next_after_seq"] == by_agreement["entries"][-1]["seq"]
    future = client.get(
        "/v1/audit/entries?since=2999-01-01T00:00:00Z", headers=federation.headers("auditor")
    )
    assert future.json()["entries"] == []

    verified = client.get("/v1/audit/verify", headers=federation.headers("auditor")).json()
    assert verified["problem"] is None
    assert verified["side"] == "hub"

    jsonl = client.get("/v1/audit/export", headers=federation.headers("auditor"))
    assert jsonl.status_code == 200
    assert jsonl.headers["content-type"].startswith("application/x-ndjson")
    lines = jsonl.text.splitlines()
    header = json.loads(lines[0])
    assert header["side"] == "hub"
    assert header["complete"] is True
    assert len(lines) - 1 == header["head_seq"]
    csv_text = client.get(
        "/v1/audit/export?format=csv&agreement_id=lnob-2026", headers=federation.headers("admin")
    ).text
    assert csv_text.splitlines()[0] == "seq,at,actor,action,object,details,prev_hash,hash"
    after = client.get(
        "/v1/audit/entries?action=audit.exported", headers=federation.headers("admin")
    )
    assert len(after.json()["entries"]) == 2


def test_auditor_api_authorization_and_bad_input(federation: Hub) -> None:
    client = federation.client
    urls = ("/v1/audit/entries", "/v1/audit/verify", "/v1/audit/export", "/v1/audit/checkpoints")
    for url in urls:
        assert client.get(url).status_code == 401
        for role in ("analyst", "secretariat"):
            denied = client.get(url, headers=federation.headers(role))
            assert denied.status_code == 403, (url, role)
            assert denied.json()["error"]["code"] == "forbidden"
    for bad in ("limit=0", "limit=5000", "after_seq=-1", "since=soon", "colour=red"):
        response = client.get(f"/v1/audit/entries?{bad}", headers=federation.headers("auditor"))
        assert response.status_code == 422, bad
        assert response.json()["error"]["code"] == "invalid_request"
    wrong = client.get("/v1/audit/export?format=xml", headers=federation.headers("auditor"))
    assert wrong.status_code == 422


def _checkpoint(node: SimNode, seq: int, digest: str, key: object = None) -> dict[str, str]:
    payload = AuditCheckpoint(
        node_id=node.node_id, seq=seq, hash=digest, signed_at=datetime.now(UTC)
    )
    return {"jws": signing.sign(payload, key or node.key)}  # type: ignore[arg-type]


def test_node_checkpoints_are_verified_kept_and_conflicts_refused(
    federation: Hub, sim_nodes: list[SimNode]
) -> None:
    client = federation.client
    ke_a, ke_b = sim_nodes[0], sim_nodes[1]
    url = "/v1/nodes/ke-a/audit/checkpoints"
    first = client.post(url, json=_checkpoint(ke_a, 10, "a" * 64))
    assert first.status_code == 201
    assert first.json()["seq"] == 10
    # The same head again is fine; another hash at the same seq means a rewritten log.
    assert client.post(url, json=_checkpoint(ke_a, 10, "a" * 64)).status_code == 201
    conflict = client.post(url, json=_checkpoint(ke_a, 10, "b" * 64))
    assert conflict.status_code == 409
    assert conflict.json()["error"]["code"] == "checkpoint_conflict"
    # Forged: signed with a key the hub never pinned.
    forged = client.post(url, json=_checkpoint(ke_a, 11, "c" * 64, signing.generate_key()))
    assert forged.status_code == 401
    # Signed by another node than the one in the path.
    other = client.post(url, json=_checkpoint(ke_b, 3, "d" * 64))
    assert other.status_code == 422
    assert other.json()["error"]["code"] == "checkpoint_invalid"
    for body in ({"jws": "not-a-jws"}, {"jws": 5}, {}, {"jws": "a.b.c", "x": 1}):
        response = client.post(url, json=body)
        assert response.status_code in (401, 422), body
        assert "error" in response.json()
    kept = client.get("/v1/audit/checkpoints?node_id=ke-a", headers=federation.headers("auditor"))
    assert [(c["seq"], c["hash"]) for c in kept.json()] == [(10, "a" * 64)]
    actions = [
        e["action"]
        for e in client.get(
            "/v1/audit/entries?node_id=ke-a", headers=federation.headers("auditor")
        ).json()["entries"]
    ]
    assert "audit.checkpoint_received" in actions
    assert "audit.checkpoint_conflict" in actions
