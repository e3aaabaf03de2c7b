"""Hash-chained audit entries, computed the same way at hub and node."""

from datetime import datetime
from typing import Any

from pydantic import Field

from contracts.signing import digest
from contracts.v1.base import WireModel

GENESIS = "0" * 64


class AuditEntry(WireModel):
    """One append-only event. `hash` covers every other field, `prev_hash` links the chain.

    `details` must never hold a data value: codes, ids, column names and costs only.
    """

    seq: int = Field(ge=1)
    at: datetime
    actor: str
    action: str
    object: str
    details: dict[str, Any] = Field(default_factory=dict)
    prev_hash: str
    hash: str


def entry_hash(
    *,
    seq: int,
    at: datetime,
    actor: str,
    action: str,
    object: str,
    details: dict[str, Any],
    prev_hash: str,
) -> str:
    body = {
        "seq": seq,
        "at": at.isoformat(),
        "actor": actor,
        "action": action,
        "object": object,
        "details": details,
        "prev_hash": prev_hash,
    }
    return digest(body)


def first_bad_seq(entries: list[AuditEntry]) -> int | None:
    """The first sequence number whose link or hash is wrong, or None if the chain holds."""
    prev = GENESIS
    for expected_seq, entry in enumerate(entries, start=1):
        recomputed = entry_hash(
            seq=entry.seq,
            at=entry.at,
            actor=entry.actor,
            action=entry.action,
            object=entry.object,
            details=entry.details,
            prev_hash=entry.prev_hash,
        )
        if entry.seq != expected_seq or entry.prev_hash != prev or entry.hash != recomputed:
            return expected_seq
        prev = entry.hash
    return None
