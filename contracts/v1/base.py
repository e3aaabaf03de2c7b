"""The frozen, closed pydantic base every v1 wire model derives from."""

from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict

# Versions and other counters are stored as 32-bit integers (PostgreSQL `integer`): a larger
# number is refused as invalid input, never sent to the database to fail there.
MAX_VERSION = 2**31 - 1


class WireModel(BaseModel):
    """A v1 wire model: immutable and refusing unknown fields, so a change is a new version."""

    model_config = ConfigDict(frozen=True, extra="forbid")


def utc(moment: datetime) -> datetime:
    """The same instant in UTC; naive values are taken as UTC (how both sides write them)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
