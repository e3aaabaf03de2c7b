"""What the audit API takes and returns besides contracts' AuditEntry and AuditVerification."""

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from contracts.v1.audit import AuditEntry, AuditFilter


class AuditQuery(AuditFilter):
    """Search parameters: the filter, then paging (`after_seq`, `limit`)."""

    after_seq: int = Field(default=0, ge=0)
    limit: int = Field(default=100, ge=1, le=1000)

    def filter(self) -> AuditFilter:
        return AuditFilter.model_validate(self.model_dump(exclude={"after_seq", "limit"}))


class ExportQuery(AuditFilter):
    format: Literal["jsonl", "csv"] = "jsonl"

    def filter(self) -> AuditFilter:
        return AuditFilter.model_validate(self.model_dump(exclude={"format"}))


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
