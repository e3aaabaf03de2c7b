"""What the hub's audit API returns besides contracts' AuditEntry and AuditVerification
(its query parameters are `runtime.audit_log.AuditQuery` and `ExportQuery`)."""

from datetime import datetime

from pydantic import BaseModel

from contracts.v1.audit import AuditEntry


class CheckpointRead(BaseModel):
    """A node's signed chain head as the hub received it; `jws` lets anyone re-verify it."""

    node_id: str
    seq: int
    hash: str
    signed_at: datetime
    received_at: datetime
    jws: str


class NodeCheckpointStatus(BaseModel):
    """Whether the hub holds a recent signed copy of one node's log.

    `answers_since`: tasks the node answered (a release or a refusal, each at least two
    entries of its log) after the hub received its newest checkpoint. `overdue`: an active
    node whose uncovered entries (so counted) exceed `HUB_CHECKPOINT_OVERDUE_ENTRIES`.
    """

    node_id: str
    node_status: str
    newest_seq: int | None
    newest_signed_at: datetime | None
    newest_received_at: datetime | None
    answers_since: int
    overdue: bool


class EntryPage(BaseModel):
    """One page of search results; pass `next_after_seq` as `after_seq` for the next page."""

    entries: list[AuditEntry]
    next_after_seq: int | None
