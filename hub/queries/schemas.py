"""Query listings out (a full answer is a `contracts.v1.QueryResult`)."""

from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel


class QuerySummary(BaseModel):
    query_id: UUID
    analyst: str
    organisation: str
    agreement_id: str
    agreement_version: int
    dataset: str
    measure: str
    status: str
    created_at: datetime
    # The question as asked (a QuerySpec's JSON), so a listing can say it in words.
    spec: dict[str, Any] | None = None
