"""Assessment requests and answers on the API (separate in and out types)."""

from datetime import datetime
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from contracts.budget import Amount
from contracts.v1.agreement import Dissemination
from contracts.v1.result import NodeStatus

Country = str  # a UN M49 code, 3 digits
CountryStatusName = Literal["complete", "collecting", "incomplete"]


class _In(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class TemplateCreate(_In):
    """A template as YAML text (the same text as a file under version control)."""

    yaml: str = Field(min_length=1, max_length=200_000)


class TemplateSummary(_Out):
    template_id: str
    version: int
    title: str
    indicators: int
    dp_indicators: int
    rho_per_node: Amount
    shipped: bool


class RoundCreate(_In):
    template_id: str = Field(min_length=1, max_length=63)
    template_version: int | None = Field(default=None, ge=1)
    period: str = Field(pattern=r"^\d{4}(-Q[1-4]|-S[12]|-\d{2})?$")
    # UN M49 country code -> the agreement its DP indicators run under.
    countries: dict[str, str] = Field(min_length=1, max_length=20)


class NodeCost(_Out):
    node_id: str
    country: str
    agreement_id: str
    # Exact decimals, like every budget amount (JSON: decimal strings).
    rho_needed: Amount
    rho_remaining: Amount

    @property
    def shortfall(self) -> Decimal:
        return max(Decimal(0), self.rho_needed - self.rho_remaining)


class RoundPlan(_Out):
    template_id: str
    template_version: int
    period: str
    queries: int
    nodes: tuple[NodeCost, ...]
    dissemination: Dissemination
    affordable: bool


class CountryStatus(_Out):
    country: str
    agreement_id: str
    status: CountryStatusName
    dp_done: int
    dp_running: int
    dp_failed: int
    dp_total: int
    answered: int
    to_answer: int


class RoundRead(_Out):
    round_id: str
    template_id: str
    template_version: int
    period: str
    status: str
    dissemination: Dissemination
    created_by: str
    created_at: datetime
    countries: tuple[CountryStatus, ...]


class QueryProgress(_Out):
    """One of a round's federated queries (indicator x breakdown) and each node's answer."""

    indicator_id: str
    breakdown: tuple[str, ...]
    query_id: str
    status: str  # the query's: running, complete, partial, failed
    nodes: tuple[NodeStatus, ...]


class RoundProgress(_Out):
    """A round's status per country and the progress of each of its queries per node."""

    round: RoundRead
    queries: tuple[QueryProgress, ...]


class AnswerIn(_In):
    value: str | float = Field(union_mode="left_to_right")


class AnswerRead(_Out):
    round_id: str
    country: str
    indicator_id: str
    value: str | float
    score: float
    answered_by: str
    answered_at: datetime


class ResultValue(_Out):
    """One DP estimate of a round: indicator, country, breakdown levels, interval, status."""

    indicator_id: str
    country: str
    breakdown: tuple[str, ...] = ()  # dims, e.g. ("group",)
    levels: tuple[str, ...] = ()  # their levels, e.g. ("dalit",)
    measure: str
    status: Literal["ok", "suppressed", "missing"]
    estimate: float | None = None
    ci95_low: float | None = None
    ci95_high: float | None = None
    reason: str | None = None
    # The nodes whose answers make this value, each with the guarantee it signed (rho,
    # epsilon at delta, mechanism, noise scale), for the fact sheets' privacy notes.
    nodes: tuple[NodeStatus, ...] = ()


class RoundResults(_Out):
    round_id: str
    template_id: str
    template_version: int
    period: str
    dissemination: Dissemination
    countries: tuple[str, ...]
    values: tuple[ResultValue, ...]
    answers: tuple[AnswerRead, ...]
    complete: bool


class Change(_Out):
    """Change of one estimate since an earlier round: noise is independent, variances add."""

    indicator_id: str
    country: str
    breakdown: tuple[str, ...]
    levels: tuple[str, ...]
    current: float | None
    previous: float | None
    change: float | None
    change_ci95_low: float | None
    change_ci95_high: float | None
    # True: the 95% interval of the change excludes 0; None: a side is missing/suppressed.
    distinguishable: bool | None


class Comparison(_Out):
    round_id: str
    previous_round_id: str | None
    period: str
    previous_period: str | None
    changes: tuple[Change, ...]
