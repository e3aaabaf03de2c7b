"""Query parameters of the steward's audit routes."""

from typing import Literal

from pydantic import Field

from contracts.v1.audit import AuditFilter


class AuditQuery(AuditFilter):
    """The filter, then paging (`after_seq`, `limit`)."""

    after_seq: int = Field(default=0, ge=0)
    limit: int = Field(default=100, ge=1, le=1000)

    def filter(self) -> AuditFilter:
        return AuditFilter.model_validate(self.model_dump(exclude={"after_seq", "limit"}))


class ExportQuery(AuditFilter):
    format: Literal["jsonl", "csv"] = "jsonl"

    def filter(self) -> AuditFilter:
        return AuditFilter.model_validate(self.model_dump(exclude={"format"}))
