"""runtime.db: what every SQLite connection is set to (the durability the ledger and the audit
chains rely on)."""

from pathlib import Path

from sqlalchemy import text

from runtime.db import make_engine

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
