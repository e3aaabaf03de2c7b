"""Hash-chained audit entries, checkpoints and exports, computed the same way at hub and node."""

import csv
import io
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal

from joserfc.jwk import OKPKey
from pydantic import Field, ValidationError

from contracts import signing
from contracts.budget import Amount
from contracts.errors import ContractError
from contracts.signing import digest
from contracts.spreadsheet import safe_cell
from contracts.v1.base import WireModel, utc

GENESIS = "0" * 64
EXPORT_FORMAT: Final = "sauti.audit.export/1"


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


# Stands in for the time of a stored entry that no longer parses (verification only).
UNREADABLE_AT: Final = datetime(1970, 1, 1, tzinfo=UTC)


def stored_entry(
    *,
    seq: int,
    at: str,
    actor: str,
    action: str,
    object: str,
    details: str,
    prev_hash: str,
    hash: str,
    lenient: bool = False,
) -> AuditEntry:
    """An entry from how both sides store it (`at` ISO text, `details` JSON text).

    `lenient` (verification): a row that no longer parses was edited; a stand-in whose hash
    cannot match is returned, so the chain check names that entry instead of stopping.
    """
    try:
        return AuditEntry(
            seq=seq,
            at=datetime.fromisoformat(at),
            actor=actor,
            action=action,
            object=object,
            details=json.loads(details),
            prev_hash=prev_hash,
            hash=hash,
        )
    except (ValueError, ValidationError):
        if not lenient:
            raise
        return AuditEntry.model_construct(
            seq=seq,
            at=UNREADABLE_AT,
            actor=str(actor),
            action=str(action),
            object=str(object),
            details={"unreadable": True},
            prev_hash=str(prev_hash),
            hash=str(hash),
        )


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


def at_text(moment: datetime) -> str:
    """How both sides store `at`: text that parses back to the exact instant the hash covers.

    Fixed microsecond precision keeps lexicographic order equal to time order, so period
    searches can compare stored text directly.
    """
    return utc(moment).isoformat(timespec="microseconds")


def next_entry(
    *,
    prev_seq: int,
    prev_hash: str,
    at: datetime,
    actor: str,
    action: str,
    object: str,
    details: dict[str, Any],
) -> AuditEntry:
    """The entry that extends a chain whose head is (`prev_seq`, `prev_hash`).

    The one place hub and node build entries, so both hash them identically. `at` is
    normalised to UTC microseconds: what the stores round-trip exactly as text.
    """
    at = datetime.fromisoformat(at_text(at))
    seq = prev_seq + 1
    return AuditEntry(
        seq=seq,
        at=at,
        actor=actor,
        action=action,
        object=object,
        details=details,
        prev_hash=prev_hash,
        hash=entry_hash(
            seq=seq,
            at=at,
            actor=actor,
            action=action,
            object=object,
            details=details,
            prev_hash=prev_hash,
        ),
    )


def next_row(
    *,
    prev_seq: int,
    prev_hash: str,
    at: datetime,
    actor: str,
    action: str,
    object: str,
    details: dict[str, Any],
) -> dict[str, Any]:
    """`next_entry` as the column values both sides store (`at` as `at_text`, `details` as
    canonical JSON text), built from plain values: the same hash over the same canonical
    bytes, without a model validated and dumped per entry (appends sit on the query path).

    Takes exactly what `next_entry` takes and refuses (ValueError) what it refuses (a non-text
    actor, action or object, non-text keys in `details`), so the two agree entry for entry
    (tests/contracts/test_audit_rows.py)."""
    if not (isinstance(actor, str) and isinstance(action, str) and isinstance(object, str)):
        raise ValueError("an audit entry's actor, action and object are text")
    if not isinstance(details, dict) or not all(isinstance(key, str) for key in details):
        raise ValueError("an audit entry's details are a mapping keyed by text")
    moment = utc(at)  # what `next_entry`'s round trip through `at_text` gives back
    seq = prev_seq + 1
    return {
        "seq": seq,
        "at": at_text(moment),
        "actor": actor,
        "action": action,
        "object": object,
        "details": json.dumps(details, sort_keys=True, separators=(",", ":")),
        "prev_hash": prev_hash,
        "hash": entry_hash(
            seq=seq,
            at=moment,
            actor=actor,
            action=action,
            object=object,
            details=details,
            prev_hash=prev_hash,
        ),
    }


class ChainProblem(WireModel):
    """Why a chain does not verify, naming the first sequence number that is wrong."""

    seq: int
    kind: Literal[
        "hash_mismatch",  # the entry was edited after it was written
        "broken_link",  # an entry before it was deleted, inserted or reordered
        "sequence_gap",  # a sequence number is missing, repeated or out of order
        "head_mismatch",  # entries at the end were deleted or added, or the head was edited
        "checkpoint_mismatch",  # the chain differs from what its owner signed earlier
        "checkpoint_invalid",  # a checkpoint's signature does not verify (forged)
    ]
    message: str


class ChainChecker:
    """Checks a chain entry by entry (constant memory), so a million entries can stream."""

    def __init__(self, *, watch: set[int] | None = None) -> None:
        self.count = 0
        self.prev_hash = GENESIS
        self.problem: ChainProblem | None = None
        # Hashes of the entries at these sequence numbers are kept (checkpoint checks).
        self.watch = watch or set()
        self.seen: dict[int, str] = {}

    def feed(self, entry: AuditEntry) -> None:
        self.count += 1
        expected = self.count
        if entry.seq in self.watch:
            self.seen[entry.seq] = entry.hash
        if self.problem is not None:
            return
        if entry.seq != expected:
            self.problem = ChainProblem(
                seq=expected,
                kind="sequence_gap",
                message=f"entry {expected} is missing; found entry {entry.seq} in its place",
            )
        elif entry.prev_hash != self.prev_hash:
            self.problem = ChainProblem(
                seq=expected,
                kind="broken_link",
                message=f"entry {expected} does not link to entry {expected - 1}",
            )
        elif entry.hash != entry_hash(
            seq=entry.seq,
            at=entry.at,
            actor=entry.actor,
            action=entry.action,
            object=entry.object,
            details=entry.details,
            prev_hash=entry.prev_hash,
        ):
            self.problem = ChainProblem(
                seq=expected,
                kind="hash_mismatch",
                message=f"entry {expected} does not match its hash (edited)",
            )
        self.prev_hash = entry.hash

    def finish(self, head: tuple[int, str] | None) -> ChainProblem | None:
        if self.problem is None and head is not None:
            self.problem = head_problem(head, last_seq=self.count, last_hash=self.prev_hash)
        return self.problem


def head_problem(
    head: tuple[int, str], *, last_seq: int, last_hash: str | None
) -> ChainProblem | None:
    """Does the head name the last entry? (`last_hash` None: only the numbers are known.)"""
    head_seq, head_hash = head
    if last_seq < head_seq:
        return ChainProblem(
            seq=last_seq + 1,
            kind="head_mismatch",
            message=f"the head names entry {head_seq} but the entries end at entry {last_seq} "
            f"(entries after it were deleted)",
        )
    if last_seq > head_seq:
        return ChainProblem(
            seq=head_seq + 1,
            kind="head_mismatch",
            message=f"the entries run past the head: it names entry {head_seq}, the log holds "
            f"entries up to {last_seq} (added without moving the head, or the head moved back)",
        )
    if last_hash is not None and last_hash != head_hash:
        return ChainProblem(
            seq=head_seq,
            kind="head_mismatch",
            message=f"the head's hash is not entry {head_seq}'s (the head or that entry was "
            "edited)",
        )
    return None


def check_chain(
    entries: Iterable[AuditEntry], *, head: tuple[int, str] | None = None
) -> ChainProblem | None:
    """The first problem in `entries` (ordered by seq), or None if the chain holds.

    `head` is the (seq, hash) the store believes is its tip: a chain cut short at the end
    still links, so only the head (or a checkpoint) can show the missing tail.
    """
    checker = ChainChecker()
    for entry in entries:
        checker.feed(entry)
    return checker.finish(head)


def first_bad_seq(entries: Iterable[AuditEntry]) -> int | None:
    """The first sequence number whose link or hash is wrong, or None if the chain holds."""
    problem = check_chain(entries)
    return problem.seq if problem else None


class AuditCheckpoint(WireModel):
    """A chain head its owner signs (compact JWS) and publishes, so it cannot rewrite its past."""

    node_id: str
    seq: int = Field(ge=0)
    hash: str = Field(pattern=r"^[0-9a-f]{64}$")
    signed_at: datetime


def check_checkpoint(seen: dict[int, str], checkpoint: AuditCheckpoint) -> ChainProblem | None:
    """Does the chain still hold the head that was signed? `seen`: hash by seq in the chain."""
    if checkpoint.seq == 0:
        return None
    found = seen.get(checkpoint.seq)
    if found is None:
        return ChainProblem(
            seq=checkpoint.seq,
            kind="checkpoint_mismatch",
            message=f"entry {checkpoint.seq}, signed in a checkpoint, is no longer in the chain",
        )
    if found != checkpoint.hash:
        return ChainProblem(
            seq=checkpoint.seq,
            kind="checkpoint_mismatch",
            message=f"entry {checkpoint.seq} differs from the one signed in a checkpoint "
            "(the chain was rewritten up to here)",
        )
    return None


class BudgetState(WireModel):
    """A node's ledger for one agreement, exported beside its log for reconciliation.

    `rho_spent` is the ledger's exact decimal, written as a decimal string ("0.37"), so an
    auditor can check it against the sum of the charges in the log to the last digit. The
    export is not signed; exports made before it became exact (a JSON number) still read.
    """

    agreement_id: str
    rho_spent: Amount
    queries: int


class AuditExportHeader(WireModel):
    """First line of an audit export (JSON Lines); every further line is one AuditEntry."""

    format: Literal["sauti.audit.export/1"] = EXPORT_FORMAT
    side: Literal["hub", "node"]
    owner_id: str = Field(description="the node_id or hub_id whose log this is")
    public_jwk: dict[str, Any]
    exported_at: datetime
    head_seq: int = Field(ge=0)
    head_hash: str
    # False when search filters were applied: a partial export cannot be chain-verified.
    complete: bool = True
    budgets: tuple[BudgetState, ...] = ()
    # Compact JWS of AuditCheckpoint: the node's own (node side), every node's (hub side).
    checkpoints: tuple[str, ...] = ()


class AuditFilter(WireModel):
    """What an auditor searches by; every field is optional and they combine with AND."""

    agreement_id: str | None = None
    analyst: str | None = None
    node_id: str | None = None
    query_id: str | None = None
    action: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def entry_agreement(entry: AuditEntry) -> str | None:
    """The agreement an entry concerns, from the conventions both sides write."""
    if isinstance(entry.details.get("agreement_id"), str):
        return str(entry.details["agreement_id"])
    agreement = entry.details.get("agreement")
    if isinstance(agreement, str):
        return agreement.split(":v", 1)[0]
    if entry.object.startswith("agreement:"):
        return entry.object.removeprefix("agreement:").split(":v", 1)[0]
    return None


def entry_nodes(entry: AuditEntry) -> set[str]:
    """The nodes an entry concerns (hub side: the nodes asked or answering)."""
    found: set[str] = set()
    for key in ("node", "node_id"):
        if isinstance(entry.details.get(key), str):
            found.add(str(entry.details[key]))
    nodes = entry.details.get("nodes")
    if isinstance(nodes, list):
        found.update(str(n) for n in nodes)
    if entry.object.startswith("node:"):
        found.add(entry.object.removeprefix("node:"))
    return found


def matches(entry: AuditEntry, flt: AuditFilter, *, owner_id: str | None = None) -> bool:
    """Does `entry` pass the filter? On a node log every entry concerns `owner_id`."""
    if flt.agreement_id is not None and entry_agreement(entry) != flt.agreement_id:
        return False
    if flt.analyst is not None and entry.actor != f"user:{flt.analyst}":
        return False
    if (
        flt.node_id is not None
        and flt.node_id != owner_id
        and flt.node_id not in entry_nodes(entry)
    ):
        return False
    if flt.query_id is not None and entry.object != f"query:{flt.query_id}":
        return False
    if flt.action is not None and entry.action != flt.action:
        return False
    if flt.since is not None and entry.at < utc(flt.since):
        return False
    return not (flt.until is not None and entry.at >= utc(flt.until))


class AuditVerification(WireModel):
    """The outcome of verifying one log: how much was checked and the first problem, if any."""

    side: Literal["hub", "node"]
    owner_id: str
    entries: int
    head_seq: int
    checkpoints_checked: int
    problem: ChainProblem | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None


# The node-log action that records a key replacement; its details name the retired key.
KEY_ROTATED: Final = "key_rotated"


@dataclass(frozen=True)
class PastKey:
    """A key the owner signed with before a rotation, and when it stopped being current."""

    public_jwk: dict[str, Any]
    retired_at: datetime


def past_keys(entries: Iterable[AuditEntry]) -> list[PastKey]:
    """The retired keys a node's own log records (`key_rotated` entries), oldest first.

    A rotation resumed after a crash may be logged twice: the later moment counts.
    """
    found: dict[str, PastKey] = {}
    for entry in entries:
        if entry.action != KEY_ROTATED:
            continue
        jwk, retired = entry.details.get("old_public_jwk"), entry.details.get("retired_at")
        if not isinstance(jwk, dict) or not isinstance(retired, str):
            continue
        try:
            key = PastKey(public_jwk=jwk, retired_at=utc(datetime.fromisoformat(retired)))
            kid = signing.key_id(signing.load_public_key(jwk))
        except (ValueError, ContractError):
            continue
        if kid not in found or found[kid].retired_at < key.retired_at:
            found[kid] = key
    return sorted(found.values(), key=lambda k: k.retired_at)


@dataclass(frozen=True)
class _Span:
    key: OKPKey
    start: datetime | None
    end: datetime | None


def _key_spans(public_jwk: dict[str, Any], previous: Sequence[PastKey]) -> dict[str, _Span]:
    """Each key by id with the interval it was current: a past key from the retirement of
    the one before it to its own; the current key from the last retirement on."""
    spans: dict[str, _Span] = {}
    start: datetime | None = None
    for past in sorted(previous, key=lambda k: utc(k.retired_at)):
        key = signing.load_public_key(past.public_jwk)
        spans[signing.key_id(key)] = _Span(key, start, utc(past.retired_at))
        start = utc(past.retired_at)
    current = signing.load_public_key(public_jwk)
    spans[signing.key_id(current)] = _Span(current, start, None)
    return spans


def _verified_checkpoint(token: str, spans: dict[str, _Span]) -> AuditCheckpoint:
    """Verified with the key its header names, if that key was current when it was signed."""
    span = spans.get(str(signing.unverified_header(token).get("kid", "")))
    if span is None:
        raise ContractError("not signed by any key of the owner")
    checkpoint = signing.verify_model(token, span.key, AuditCheckpoint)
    signed_at = utc(checkpoint.signed_at)
    if (span.start is not None and signed_at < span.start) or (
        span.end is not None and signed_at > span.end
    ):
        raise ContractError("signed by a key that was not the owner's at that time")
    return checkpoint


def verify_log(
    *,
    side: Literal["hub", "node"],
    owner_id: str,
    entries: Iterable[AuditEntry],
    head: tuple[int, str] | None,
    checkpoints: list[str],
    public_jwk: dict[str, Any] | None,
    previous_keys: Sequence[PastKey] = (),
    last_seq: int | None = None,
    as_of: datetime | None = None,
) -> AuditVerification:
    """Chain, head and every signed checkpoint of a node, in one pass.

    A live log is verified as the snapshot its store read: `entries` up to `head`, and
    `last_seq`, the highest sequence number stored at that same moment (a committed log
    always has its head there, so more means entries added behind the head's back). Entries
    appended while the check runs are simply not part of it. A checkpoint signed after the
    snapshot (`as_of`, the owner's clock) for an entry beyond it is skipped, not failed.

    A checkpoint verifies with the owner's current key (`public_jwk`) or with one of its
    `previous_keys`, whichever was current at the checkpoint's `signed_at`. One that does
    not verify, or names another owner, is a forgery; one that verifies but disagrees with
    the chain shows a rewritten past.
    """
    forged: ChainProblem | None = None
    valid: list[AuditCheckpoint] = []
    spans = _key_spans(public_jwk, previous_keys) if public_jwk and checkpoints else None
    for token in checkpoints:
        try:
            if spans is None:
                raise ContractError("no key to verify checkpoints with")
            checkpoint = _verified_checkpoint(token, spans)
        except ContractError:
            forged = forged or ChainProblem(
                seq=0,
                kind="checkpoint_invalid",
                message="a checkpoint's signature does not verify with the owner's key (forged)",
            )
            continue
        if checkpoint.node_id != owner_id:
            forged = forged or ChainProblem(
                seq=checkpoint.seq,
                kind="checkpoint_invalid",
                message="a checkpoint names another node than the log's owner",
            )
            continue
        if _after_snapshot(checkpoint, head=head, as_of=as_of):
            continue
        valid.append(checkpoint)
    checker = ChainChecker(watch={c.seq for c in valid})
    for entry in entries:
        checker.feed(entry)
    problem = checker.finish(head)
    if problem is None and head is not None and last_seq is not None:
        problem = head_problem(head, last_seq=last_seq, last_hash=None)
    for checkpoint in valid:
        mismatch = check_checkpoint(checker.seen, checkpoint)
        if mismatch is not None and (problem is None or mismatch.seq < problem.seq):
            problem = mismatch
    return AuditVerification(
        side=side,
        owner_id=owner_id,
        entries=checker.count,
        head_seq=head[0] if head else checker.count,
        checkpoints_checked=len(valid),
        problem=forged or problem,
    )


def _after_snapshot(
    checkpoint: AuditCheckpoint, *, head: tuple[int, str] | None, as_of: datetime | None
) -> bool:
    # Signed after the snapshot was read, for an entry beyond it: nothing to compare yet. One
    # signed before it for an entry beyond it still fails: those entries were deleted.
    return (
        head is not None
        and as_of is not None
        and checkpoint.seq > head[0]
        and utc(checkpoint.signed_at) > utc(as_of)
    )


CSV_COLUMNS = ("seq", "at", "actor", "action", "object", "details", "prev_hash", "hash")


def csv_row(entry: AuditEntry) -> list[str | int]:
    """One CSV row per entry (hub and node exports alike), `details` as compact JSON."""
    return [
        entry.seq,
        at_text(entry.at),
        _cell(entry.actor),
        _cell(entry.action),
        _cell(entry.object),
        _cell(_compact(entry.details)),
        entry.prev_hash,
        entry.hash,
    ]


def csv_chunks(entries: Iterable[AuditEntry]) -> Iterator[str]:
    """A CSV document (header row first) in chunks of about 64 kB, for streaming."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    for entry in entries:
        writer.writerow(csv_row(entry))
        if buffer.tell() > 64_000:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def _cell(text: str) -> str:
    # Names and details are typed by users: never let a spreadsheet run them as formulas.
    return safe_cell(text)


def _compact(value: dict[str, Any]) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
