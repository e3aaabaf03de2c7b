"""runtime.db: what every SQLite connection is set to (the durability the ledger and the audit
chains rely on), and Core transactions (the node's query path)."""

from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError

from runtime.db import after_commit, core_transaction, make_engine

FULL = 2  # PRAGMA synchronous: 0 OFF, 1 NORMAL, 2 FULL, 3 EXTRA


def test_sqlite_connections_run_wal_with_a_synced_commit(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/x.sqlite")
    try:
        with engine.connect() as connection:
            assert connection.execute(text("PRAGMA journal_mode")).scalar_one() == "wal"
            # Set explicitly, whatever this SQLite build defaults WAL databases to.
            assert connection.execute(text("PRAGMA synchronous")).scalar_one() == FULL
    finally:
        engine.dispose()


def _engine_with_table(tmp_path: Path) -> Engine:
    engine = make_engine(f"sqlite:///{tmp_path}/x.sqlite")
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE t (a INTEGER)"))
    return engine


def _rows(engine: Engine) -> list[int]:
    with engine.connect() as connection:
        return [r[0] for r in connection.execute(text("SELECT a FROM t ORDER BY a"))]


def test_a_core_transaction_commits_then_runs_its_hooks_once(tmp_path: Path) -> None:
    engine = _engine_with_table(tmp_path)
    ran: list[list[int]] = []

    def hook() -> None:
        ran.append(_rows(engine))  # after the commit: another connection sees the row

    try:
        with core_transaction(engine, info={"url": "x"}) as connection:
            assert connection.info["url"] == "x"
            connection.execute(text("INSERT INTO t VALUES (1)"))
            after_commit(connection, hook)
            after_commit(connection, hook)  # once, as with a session
            assert ran == []
        assert ran == [[1]]
    finally:
        engine.dispose()


def test_a_core_transaction_rolls_back_runs_no_hook_and_leaves_no_info(tmp_path: Path) -> None:
    engine = _engine_with_table(tmp_path)
    ran: list[str] = []
    try:

        def refused() -> None:
            with core_transaction(engine, info={"url": "x"}) as c:
                c.execute(text("INSERT INTO t VALUES (1)"))
                c.info["tip"] = "cached for this transaction"
                after_commit(c, lambda: ran.append("ran"))
                raise RuntimeError("refused")

        with pytest.raises(RuntimeError):
            refused()
        assert ran == []
        assert _rows(engine) == []
        # The pooled connection comes back without what either transaction put in its info.
        with core_transaction(engine) as connection:
            assert not {"url", "tip", "after_commit"} & set(connection.info)
            connection.execute(text("INSERT INTO t VALUES (2)"))
        with core_transaction(engine) as connection:
            assert not {"url", "tip", "after_commit"} & set(connection.info)
        assert _rows(engine) == [2]
    finally:
        engine.dispose()


def test_a_core_transaction_holds_the_write_lock_from_its_start(tmp_path: Path) -> None:
    # BEGIN IMMEDIATE, as `transaction`: a second writer waits (here: times out) at once.
    engine = _engine_with_table(tmp_path)
    other = make_engine(f"sqlite:///{tmp_path}/x.sqlite", sqlite_timeout=0.1)
    try:
        with (
            core_transaction(engine),
            pytest.raises(OperationalError),
            core_transaction(other),
        ):
            pass
    finally:
        engine.dispose()
        other.dispose()
