"""Batched audit appends on SQLite and PostgreSQL: one chain, savepoints, cached files."""

import json
from pathlib import Path
from typing import Any

import pytest

from contracts import signing
from node.audit import service as audit
from node.db import transaction
from node.home import init_home, load_identity, load_key, pin_hub


def test_append_many_extends_one_chain_across_transactions(db_url: str) -> None:
    with transaction(db_url) as session:
        first = audit.append(session, actor="hub", action="a", object="o", details={"n": 1})
        many = audit.append_many(
            session,
            [
                audit.Event(actor="hub", action="b", object="o", details={"n": 2}),
                audit.Event(actor="hub", action="c", object="o", details={"rho": 0.25}),
            ],
        )
        assert audit.append_many(session, []) == []
    with transaction(db_url) as session:
        later = audit.append(session, actor="node", action="d", object="o", details={})
    assert [first, *many, later] == [1, 2, 3, 4]
    assert audit.head(database_url=db_url)[0] == 4
    assert audit.verify_chain(database_url=db_url) is None
    assert [e.action for e in audit.entries(database_url=db_url)] == ["a", "b", "c", "d"]


def test_a_rolled_back_savepoint_leaves_no_gap(db_url: str) -> None:
    with transaction(db_url) as session:
        audit.append(session, actor="hub", action="kept", object="o", details={})
        try:
            with session.begin_nested():
                audit.append(session, actor="hub", action="undone", object="o", details={})
                raise RuntimeError("roll the savepoint back")
        except RuntimeError:
            pass
        audit.append(session, actor="hub", action="after", object="o", details={})
    entries = audit.entries(database_url=db_url)
    assert [(e.seq, e.action) for e in entries] == [(1, "kept"), (2, "after")]
    assert audit.verify_chain(database_url=db_url) is None


def test_cached_identity_and_key_follow_the_files(tmp_path: Path) -> None:
    home = tmp_path / "home"
    init_home(home, name="Cache CSO", country="524", node_id="cache-cso")
    assert load_identity(home).hub_id is None
    key = load_key(home)
    assert load_key(home) is key  # parsed once while the file is unchanged
    pin_hub(home, hub_id="hub-a", public_jwk=signing.public_jwk(signing.generate_key()))
    assert load_identity(home).hub_id == "hub-a"
    replacement = signing.generate_key()
    (home / "keys" / "node.jwk.json").write_text(json.dumps(replacement.as_dict(private=True)))
    assert signing.key_id(load_key(home)) == signing.key_id(replacement)


def test_appends_from_several_writers_and_rolled_back_ones_keep_one_chain(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each `AuditLog` starts a transaction's append from the head it last wrote, and moves
    the head only if it is still that one: two writers (two processes' logs) taking turns,
    and a transaction rolled back after its append, still give one chain with no gap."""
    from node.audit.models import AuditHead, AuditRow  # noqa: PLC0415
    from runtime.audit_log import AuditLog  # noqa: PLC0415

    one, other = (AuditLog(entries=AuditRow, head=AuditHead) for _ in range(2))
    locked = []
    read_head = AuditLog.locked_tip

    def spy(self: AuditLog, session: Any) -> Any:
        locked.append(True)
        return read_head(self, session)

    monkeypatch.setattr(AuditLog, "locked_tip", spy)
    expected = []
    for turn in range(6):
        log = one if turn % 2 == 0 else other
        with transaction(db_url) as session:
            expected.append(log.append(session, actor="hub", action=f"a{turn}", object="o"))
        if turn == 3:
            try:
                with transaction(db_url) as session:
                    one.append(session, actor="hub", action="undone", object="o")
                    raise RuntimeError("roll the transaction back")
            except RuntimeError:
                pass
    # The same writer twice in a row (its guess right), then after the rollback (its
    # guess wrong: the head is read under its lock instead).
    with transaction(db_url) as session:
        expected.append(one.append(session, actor="hub", action="b0", object="o"))
        expected.append(one.append(session, actor="hub", action="b1", object="o"))
    with transaction(db_url) as session:
        expected.append(one.append(session, actor="hub", action="b2", object="o"))
    assert expected == list(range(1, 10))
    # The head was read under its lock whenever the writer's guess was wrong (each turn and
    # after the rollback: 8 transactions), never in b1 (same transaction) nor b2 (guessed).
    assert len(locked) == 8
    entries = audit.entries(database_url=db_url)
    assert [e.action for e in entries] == [f"a{n}" for n in range(6)] + ["b0", "b1", "b2"]
    assert audit.head(database_url=db_url) == (9, entries[-1].hash)
    assert audit.verify_chain(database_url=db_url) is None
