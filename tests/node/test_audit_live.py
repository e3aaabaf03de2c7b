"""The node's audit log while it works, on SQLite and PostgreSQL: what cron and auditors see.

* `verify` checks the snapshot it reads first: 100 queries appending meanwhile (real
  threads) never make it cry tamper, and an export taken meanwhile is consistent (its
  budgets are what its charges add up to).
* Checkpoints fall due at the append, on every path, once: concurrent triggers and
  concurrent manual checkpoints never sign two heads in a row.
* A damaged database is one line and exit 1; an edited row is named like any edit.
"""

import json
import sqlite3
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from itertools import pairwise
from pathlib import Path

import pytest
from sqlalchemy import select, update
from typer.testing import CliRunner

from contracts import budget as exact
from contracts import signing
from contracts.v1 import Signed
from contracts.v1.audit import (
    AuditCheckpoint,
    AuditEntry,
    AuditExportHeader,
    AuditVerification,
)
from hub.audit.reconcile import parse_export, verify_export
from node.audit import checkpoints
from node.audit import service as audit
from node.audit.models import AuditRow, CheckpointRow
from node.db import dispose_engines, transaction
from node.exceptions import NodeError
from node.queries.service import handle_query
from node.settings import NodeSettings
from sauti.cli import app as cli
from tests.node.conftest import Node, make_node

QUERIES = 100
EVERY = 10


@pytest.fixture
def node(tmp_path: Path, db_url: str) -> Iterator[Node]:
    made = make_node(tmp_path / "n", db_url, rho_budget=50.0, rho_per_query_max=0.1)
    yield made
    checkpoints.disable(made.settings)
    dispose_engines()


def _cadence(node: Node, every: int = EVERY) -> NodeSettings:
    settings = node.settings.model_copy(update={"audit_checkpoint_every": every})
    checkpoints.enable(settings)
    return settings


def _tokens(node: Node, n: int) -> list[Signed]:
    return [Signed(jws=signing.sign(node.request(), node.hub_key)) for _ in range(n)]


def test_verify_and_export_while_100_queries_append(node: Node) -> None:
    settings = _cadence(node)
    tokens = _tokens(node, QUERIES)
    first_done, verified_once = threading.Event(), threading.Event()

    def ask(i: int) -> str:
        if i >= QUERIES // 2:
            verified_once.wait(60)  # the second half appends after a verification began
        try:
            handle_query(settings=node.settings, signed=tokens[i])
            return "ok"
        except NodeError as exc:
            return exc.code
        finally:
            first_done.set()

    results: list[AuditVerification] = []
    exports: list[list[str]] = []
    with ThreadPoolExecutor(QUERIES) as pool:
        answers = [pool.submit(ask, i) for i in range(QUERIES)]
        first_done.wait(60)
        while not all(a.done() for a in answers) or not results:
            results.append(audit.verify(home=node.home, settings=settings))
            verified_once.set()
            exports.append(list(audit.export_lines(home=node.home, settings=settings)))
    assert [a.result() for a in answers] == ["ok"] * QUERIES

    final = audit.verify(home=node.home, settings=settings)
    assert final.ok, final.problem
    assert [r.problem for r in results] == [None] * len(results)
    # At least one verification ran with the log only partly written.
    assert any(0 < r.head_seq < final.head_seq for r in results)
    assert final.entries == final.head_seq >= 3 * QUERIES
    for lines in exports:
        log = parse_export(lines)
        assert verify_export(log).ok
        charged = exact.total(e.details["rho"] for e in log.entries if e.action == "budget_charged")
        assert [b.rho_spent for b in log.header.budgets] == [charged]
    # Checkpoints were signed meanwhile too (when one falls due depends on the writers queued
    # before it), never two for less than EVERY new entries.
    signed = _checkpoint_seqs(settings)
    assert final.checkpoints_checked == len(signed) >= 2
    assert all(b - a >= EVERY for a, b in pairwise(signed))


def test_appends_during_a_verification_are_left_to_the_next_run(
    node: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reported failure, made deterministic: entries land between head read and stream."""
    original = audit.iter_entries
    tokens = iter(_tokens(node, 3))

    def appended_meanwhile(**kwargs: object) -> Iterator[AuditEntry]:
        handle_query(settings=node.settings, signed=next(tokens))  # after the head was read
        yield from original(**kwargs)  # type: ignore[arg-type]

    handle_query(settings=node.settings, signed=next(tokens))
    monkeypatch.setattr(audit, "iter_entries", appended_meanwhile)
    during = audit.verify(home=node.home, settings=node.settings)
    assert during.ok, during.problem
    monkeypatch.setattr(audit, "iter_entries", original)
    after = audit.verify(home=node.home, settings=node.settings)
    assert after.ok
    assert after.head_seq > during.head_seq == during.entries


def test_head_messages_say_which_way_the_entries_differ(node: Node) -> None:
    for token in _tokens(node, 2):
        handle_query(settings=node.settings, signed=token)
    lines = list(audit.export_lines(home=node.home, settings=node.settings))
    header = AuditExportHeader.model_validate_json(lines[0])
    short = verify_export(parse_export(lines[:-2]))
    assert short.problem is not None
    assert short.problem.kind == "head_mismatch"
    assert short.problem.message == (
        f"the head names entry {header.head_seq} but the entries end at entry "
        f"{header.head_seq - 2} (entries after it were deleted)"
    )
    behind = header.model_copy(update={"head_seq": header.head_seq - 1})
    long = verify_export(parse_export([behind.model_dump_json(), *lines[1:]]))
    assert long.problem is not None
    assert long.problem.seq == header.head_seq
    assert long.problem.message.startswith(
        f"the entries run past the head: it names entry {header.head_seq - 1}, "
        f"the log holds entries up to {header.head_seq}"
    )


def _checkpoint_seqs(settings: NodeSettings) -> list[int]:
    with transaction(settings.db_url) as session:
        return list(session.scalars(select(CheckpointRow.seq).order_by(CheckpointRow.seq)))


def test_checkpoints_fall_due_once_under_concurrent_appends(node: Node) -> None:
    settings = _cadence(node, every=5)
    barrier = threading.Barrier(24)

    def append(i: int) -> None:
        barrier.wait()
        with transaction(settings.db_url) as session:
            audit.append(session, actor="steward", action="noted", object=f"n:{i}", details={})

    with ThreadPoolExecutor(24) as pool:
        list(pool.map(append, range(24)))
    signed = _checkpoint_seqs(settings)
    assert len(signed) >= 3
    assert all(b - a >= 5 for a, b in pairwise(signed)), signed
    assert audit.verify(home=node.home, settings=settings).checkpoints_checked == len(signed)


def _note(settings: NodeSettings, n: int) -> None:
    for i in range(n):
        with transaction(settings.db_url) as session:
            audit.append(session, actor="steward", action="noted", object=f"n:{i}", details={})


def _hashes(settings: NodeSettings) -> dict[int, str]:
    with transaction(settings.db_url) as session:
        return {row.seq: row.hash for row in session.scalars(select(AuditRow))}


def test_due_points_crossed_before_a_signer_runs_are_each_signed_once(node: Node) -> None:
    """The flaky cadence made deterministic: two points fall due while no signer gets the
    lock (here: none runs); the next one signs both, at the hashes the log holds there."""
    start = audit.make_checkpoint(home=node.home, settings=node.settings).seq
    settings = node.settings.model_copy(update={"audit_checkpoint_every": 5})
    first = audit.next_due_after(start + 1, 5)  # after the start checkpoint's own entry
    _note(settings, first + 7 - (start + 1))
    signer = checkpoints.enable(settings)
    assert signer is not None
    signer.sign()
    signer.sign()  # a racing trigger finds nothing left to sign
    assert _checkpoint_seqs(settings) == [start, first, first + 5]
    hashes = _hashes(settings)
    made = [
        signing.verify_model(
            jws, signing.load_public_key(node.identity.public_jwk), AuditCheckpoint
        )
        for jws in audit.checkpoints(database_url=settings.db_url)[1:]
    ]
    assert [(c.seq, c.hash) for c in made] == [(s, hashes[s]) for s in (first, first + 5)]
    # The head is first + 9 (the two checkpoints' own entries after first + 7).
    assert signer.next_due == first + 10
    # A manual checkpoint catches up too before it signs the head.
    checkpoints.disable(settings)
    _note(settings, 7)
    assert audit.make_checkpoint(home=node.home, settings=settings).seq == first + 16
    assert _checkpoint_seqs(settings)[3:] == [first + 10, first + 15, first + 16]
    assert audit.make_checkpoint(home=node.home, settings=settings).seq == first + 16
    verified = audit.verify(home=node.home, settings=settings)
    assert verified.ok, verified.problem
    assert verified.checkpoints_checked == 6


def test_a_checkpoints_own_entry_never_falls_due(node: Node) -> None:
    """With a checkpoint after every entry, signing one does not make the next due."""
    start = audit.make_checkpoint(home=node.home, settings=node.settings).seq
    settings = _cadence(node, every=1)
    _note(settings, 3)
    assert _checkpoint_seqs(settings) == [start, start + 2, start + 4, start + 6]
    assert audit.head(database_url=settings.db_url)[0] == start + 7


def test_concurrent_manual_checkpoints_sign_the_head_once(node: Node) -> None:
    checkpoints.disable(node.settings)
    with transaction(node.settings.db_url) as session:
        audit.append(session, actor="steward", action="noted", object="n", details={})
    barrier = threading.Barrier(8)

    def make(_i: int) -> int:
        barrier.wait()
        return audit.make_checkpoint(home=node.home, settings=node.settings).seq

    with ThreadPoolExecutor(8) as pool:
        made = set(pool.map(make, range(8)))
    # Before: one checkpoint per racer at consecutive seqs (each signing the last one's entry).
    assert made == set(_checkpoint_seqs(node.settings))
    assert len(made) == 1


def test_every_append_path_can_make_a_checkpoint_due(tmp_path: Path) -> None:
    """The command line's steward actions and imports sign too, not only the query route."""
    home = tmp_path / "n"
    runner = CliRunner()
    env = {"NODE_AUDIT_CHECKPOINT_EVERY": "2"}
    for args in (
        ["node", "init", "--name", "CSO", "--country", "524"],
        ["node", "token", "create", "--name", "one"],
        ["node", "token", "create", "--name", "two"],
        ["node", "token", "create", "--name", "three"],
    ):
        done = runner.invoke(cli, [*args, "--home", str(home)], env=env)
        assert done.exit_code == 0, done.output
    settings = NodeSettings(home=home)
    # Three tokens and the first checkpoint's own entry: both due points, 2 and 4, signed.
    assert _checkpoint_seqs(settings) == [2, 4]
    verified = runner.invoke(cli, ["audit", "verify", "--home", str(home), "--json"])
    assert json.loads(verified.output)["checkpoints_checked"] == 2
    checkpoints.disable(settings)


def _node_home(tmp_path: Path) -> Path:
    home = tmp_path / "n"
    runner = CliRunner()
    done = runner.invoke(
        cli, ["node", "init", "--home", str(home), "--name", "N", "--country", "524"]
    )
    assert done.exit_code == 0, done.output
    for name in ("a", "b", "c"):
        made = runner.invoke(cli, ["node", "token", "create", "--home", str(home), "--name", name])
        assert made.exit_code == 0, made.output
    checkpoints.disable(NodeSettings(home=home))
    dispose_engines()
    return home


def test_a_damaged_database_is_one_line_and_exit_1(tmp_path: Path) -> None:
    home = _node_home(tmp_path)
    database = home / "node.sqlite"
    with sqlite3.connect(database) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = bytearray(database.read_bytes())
    for page in range(1, len(data) // 4096):  # every b-tree page header but the first
        data[page * 4096 : page * 4096 + 8] = b"\xff" * 8
    database.write_bytes(bytes(data))
    result = CliRunner().invoke(cli, ["audit", "verify", "--home", str(home)])
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        "error: database_unreadable: cannot read the audit log's database "
        "(database disk image is malformed)"
    ]


@pytest.mark.parametrize(("column", "value"), [("details", "{not json"), ("at", "yesterday")])
def test_an_unreadable_row_is_named_as_edited(tmp_path: Path, column: str, value: str) -> None:
    home = _node_home(tmp_path)
    settings = NodeSettings(home=home)
    with transaction(settings.db_url) as session:
        session.execute(update(AuditRow).where(AuditRow.seq == 2).values({column: value}))
    result = CliRunner().invoke(cli, ["audit", "verify", "--home", str(home)])
    assert result.exit_code == 1
    assert "hash_mismatch at entry 2: entry 2 does not match its hash (edited)" in result.output
    assert "Traceback" not in result.output
