"""`next_row` (the plain path appends take) hashes and stores exactly what `next_entry` (the
model path) does: same hashes, same chain, same stored text, the same refusals."""

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from contracts.v1.audit import GENESIS, at_text, first_bad_seq, next_entry, next_row, stored_entry

EVENTS: list[tuple[datetime, str, str, str, dict[str, Any]]] = [
    (datetime(2026, 12, 7, 18, 0, 0, 123456, tzinfo=UTC), "hub", "query.submitted", "query:a", {}),
    # Whole seconds: isoformat() drops the microseconds the stored text keeps.
    (
        datetime(2026, 12, 7, 18, 0, 1, tzinfo=UTC),
        "hub",
        "query.node_outcome",
        "query:a",
        {"node": "n1", "outcome": "ok", "error_code": None},
    ),
    # Another offset, and a naive time (taken as UTC).
    (
        datetime(2026, 12, 7, 21, 0, 2, 5, tzinfo=timezone(timedelta(hours=3))),
        "user:ana",
        "query.completed",
        "query:a",
        {"status": "complete", "answered": 1, "asked": 1, "cost": 0.1, "eps": 1e-07},
    ),
    (
        datetime(2026, 12, 7, 18, 0, 3, 999999),
        "hub",
        "ünïcode.action",
        "object:ñ",
        {"nested": {"b": [1, 2.5, "x"], "a": True}, "ключ": "значение"},
    ),
]


def _rows() -> tuple[list[dict[str, Any]], list[Any]]:
    rows, entries = [], []
    seq, prev = 0, GENESIS
    for at, actor, action, obj, details in EVENTS:
        common: dict[str, Any] = {
            "at": at,
            "actor": actor,
            "action": action,
            "object": obj,
            "details": details,
        }
        entry = next_entry(prev_seq=seq, prev_hash=prev, **common)
        row = next_row(prev_seq=seq, prev_hash=prev, **common)
        rows.append(row)
        entries.append(entry)
        seq, prev = row["seq"], row["hash"]
    return rows, entries


def test_rows_hash_and_store_as_the_model_path() -> None:
    rows, entries = _rows()
    for row, entry in zip(rows, entries, strict=True):
        assert row == {
            "seq": entry.seq,
            "at": at_text(entry.at),
            "actor": entry.actor,
            "action": entry.action,
            "object": entry.object,
            "details": json.dumps(entry.details, sort_keys=True, separators=(",", ":")),
            "prev_hash": entry.prev_hash,
            "hash": entry.hash,
        }
    assert first_bad_seq(entries) is None
    # Read back as stored, the rows' chain verifies (and reads as the model path's entries).
    stored = [stored_entry(**row) for row in rows]
    assert first_bad_seq(stored) is None
    assert stored == entries


def test_rows_refuse_what_the_model_refuses() -> None:
    at = datetime(2026, 12, 7, tzinfo=UTC)
    bad: list[dict[str, Any]] = [
        {"actor": 1, "action": "a", "object": "o", "details": {}},
        {"actor": "hub", "action": "a", "object": "o", "details": {1: "x"}},
    ]
    for fields in bad:
        with pytest.raises(ValueError):  # pydantic's ValidationError, or the canonical JSON's
            next_entry(prev_seq=0, prev_hash=GENESIS, at=at, **fields)
        with pytest.raises(ValueError):
            next_row(prev_seq=0, prev_hash=GENESIS, at=at, **fields)
