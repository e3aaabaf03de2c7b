"""Batched audit appends on SQLite and PostgreSQL: one chain, savepoints, cached files."""

import json
from pathlib import Path

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
