"""What an agreement's terms mean: its budget calendar and its rules in plain language.

Hub and node both import this, so the MoU a ministry files, the summary a steward reads
before signing and the periods the node's ledger charges against can never disagree.
"""

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Literal

from contracts.budget_anchor import anchor_text
from contracts.v1.agreement import AgreementTerms
from contracts.v1.query import QuerySpec

# What secure aggregation covers: unweighted integer vectors that add across nodes.
SECURE_MEASURES = ("count", "share", "sum")
HUB_DIMS = ("country", "node")

PURPOSE_CODES: dict[str, str] = {
    "sdg-monitoring": "monitoring Sustainable Development Goal indicators",
    "lnob-assessment": "a Leave No One Behind cross-country assessment",
    "policy-research": "policy research",
    "service-planning": "planning public services",
    "official-statistics": "producing official statistics",
}
MEASURE_TEXT: dict[str, str] = {
    "count": "counts of respondents",
    "share": "shares (proportions) of respondents",
    "sum": "sums",
    "mean": "means",
    "quantile": "quantiles (such as medians)",
    "histogram": "histograms",
}
DISSEMINATION_TEXT: dict[str, str] = {
    "public": "may be published openly",
    "partners": "may be shared only among the partners to this agreement",
    "restricted": "stay with the permitted analyst organisations and may not be passed on",
}
PERIOD_TEXT: dict[str, str] = {
    "validity": "for the whole validity of the agreement, amendments included",
    "calendar_year": "for each calendar year (UTC), granted afresh every 1 January",
    "quarter": "for each calendar quarter (UTC), granted afresh every January, April, July "
    "and October",
}


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC) if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def budget_window(terms: AgreementTerms, at: datetime) -> tuple[datetime | None, datetime | None]:
    """The budget period containing `at`, as [start, end) in UTC; (None, None) for `validity`.

    `validity` has one period for the agreement's whole life: every charge under any version
    counts, so an amendment that widens the window cannot hand out the budget again.
    """
    moment = _utc(at)
    if terms.budget_period == "calendar_year":
        start = datetime(moment.year, 1, 1, tzinfo=UTC)
        return start, datetime(moment.year + 1, 1, 1, tzinfo=UTC)
    if terms.budget_period == "quarter":
        first_month = 3 * ((moment.month - 1) // 3) + 1
        start = datetime(moment.year, first_month, 1, tzinfo=UTC)
        end = (
            datetime(moment.year + 1, 1, 1, tzinfo=UTC)
            if first_month == 10
            else datetime(moment.year, first_month + 3, 1, tzinfo=UTC)
        )
        return start, end
    return None, None


def period_label(terms: AgreementTerms, at: datetime) -> str:
    """A short name of the budget period containing `at`: `2026`, `2026-Q3` or `validity`."""
    moment = _utc(at)
    if terms.budget_period == "calendar_year":
        return f"{moment.year}"
    if terms.budget_period == "quarter":
        return f"{moment.year}-Q{(moment.month - 1) // 3 + 1}"
    return "validity"


@dataclass(frozen=True)
class Section:
    heading: str
    lines: tuple[str, ...]


def _date(moment: datetime) -> str:
    return _utc(moment).strftime("%d %B %Y, %H:%M UTC")


def _names(values: tuple[str, ...], empty: str) -> str:
    return ", ".join(values) if values else empty


def labelled(name: str, labels: Mapping[str, str] | None) -> str:
    """A column by its label, with its name in brackets: `Age in years (age)`."""
    label = (labels or {}).get(name, "").strip()
    return f"{label} ({name})" if label and label != name else name


Validity = Literal["not_yet_valid", "in_force", "expired"]


def validity_at(terms: AgreementTerms, at: datetime) -> Validity:
    """Where `at` falls in the window the parties signed: in force from `valid_from`, up to
    but not at `valid_until` ([valid_from, valid_until), the days `validity_days` names).

    The one rule both sides apply: the node refuses a query and the hub calls a version
    expired at the same instant, the one the signed text says it ends at.
    """
    moment = _utc(at)
    if moment < _utc(terms.valid_from):
        return "not_yet_valid"
    if moment >= _utc(terms.valid_until):
        return "expired"
    return "in_force"


def validity_days(terms: AgreementTerms) -> tuple[date, date]:
    """The first and last UTC day the agreement is in force, both included: the window
    [valid_from, valid_until) ends just before `valid_until`, so a version valid until
    1 January 2027, 00:00 UTC is in force through 31 December 2026."""
    last = _utc(terms.valid_until) - timedelta(microseconds=1)
    return _utc(terms.valid_from).date(), last.date()


def validity_text(terms: AgreementTerms) -> str:
    first, last = validity_days(terms)
    return (
        f"In force from {first:%d %B %Y} through {last:%d %B %Y}, both days included (UTC):"
        f" from {_date(terms.valid_from)} until just before {_date(terms.valid_until)}."
    )


def collusion_text(collusion: int) -> str:
    """Who may share what they know with the hub while the guarantee still holds."""
    if collusion == 0:
        return "as long as no node shares what it knows with the hub"
    if collusion == 1:
        return "even if 1 other node shares what it knows with the hub"
    return f"even if up to {collusion} other nodes share what they know with the hub"


def grid_refusal(terms: AgreementTerms, spec: QuerySpec) -> str | None:
    """Why `spec`'s quantile candidates or histogram edges break the agreement's `grids` term
    (None: they do not). Under `grids: public` a spec must leave them out (the node derives
    them from the contract's public bounds) or give one of `public_grids` for its column."""
    if terms.grids != "public":
        return None
    for kind, values in (("candidates", spec.candidates), ("edges", spec.edges)):
        if values is None:
            continue
        allowed = {
            tuple(g.values)
            for g in terms.public_grids
            if g.kind == kind and g.column == spec.column
        }
        if tuple(values) not in allowed:
            return (
                f"term grids: the agreement allows only the contract's default {kind} or one"
                f" it lists for {spec.column}"
            )
    return None


def secure_refusal(terms: AgreementTerms, spec: QuerySpec) -> str | None:
    """Why `spec` cannot be securely aggregated under `terms` (None: it can)."""
    if terms.aggregation != "secure":
        return "the agreement does not allow secure aggregation"
    if spec.measure not in SECURE_MEASURES:
        return f"secure aggregation covers count, share and sum, not {spec.measure}"
    if spec.weighted:
        return "secure aggregation covers unweighted queries only"
    if any(dim in HUB_DIMS for dim in spec.group_by):
        return "a split by node or country would show each node's own noisy cells"
    return None


def filter_refusal(spec: QuerySpec) -> str | None:
    """Why the filters of `spec` are malformed (None: they are not). Filtering a column twice
    or naming a level twice adds nothing but work, and thousands of such filters fit in one
    signed request: hub and node both refuse them before anything is planned or charged."""
    columns = [f.column for f in spec.filters]
    if len(set(columns)) != len(columns):
        return "filters name a column more than once"
    if any(len(set(f.levels)) != len(f.levels) for f in spec.filters):
        return "a filter names a level more than once"
    return None


def plain_language(
    terms: AgreementTerms, *, labels: Mapping[str, str] | None = None
) -> tuple[Section, ...]:
    """The terms as sentences a steward or a ministry official can check line by line.

    `labels` names columns by their labels from the dataset contracts (name -> label).
    """
    purpose = PURPOSE_CODES.get(terms.purpose_code, f"the coded purpose {terms.purpose_code!r}")
    parties = tuple(
        f"{p.organisation} ({p.role}"
        + (f", country {p.country}" if p.country else "")
        + (f", node {p.node_id}" if p.node_id else "")
        + ")"
        for p in terms.parties
    )
    datasets = tuple(f"{d.name}, contract version {d.contract_version}" for d in terms.datasets)
    datasets += tuple(
        f"shared module {m.name}, version {m.version}: each node answers through its own"
        " mapping, which stays at the node"
        for m in terms.modules
    )
    measures = ", ".join(MEASURE_TEXT.get(m, m) for m in terms.measures)
    width = (
        f"Cells whose 95% interval is wider than {terms.max_ci_relative_width:g} times their "
        "estimate are withheld."
        if terms.max_ci_relative_width is not None
        else "No limit on interval width is set."
    )
    where = (
        "each node withholds its own small or imprecise cells"
        if terms.suppression == "per_node"
        else "nodes send every noisy cell to the hub, which withholds small or imprecise"
        " combined cells before anything is published"
    )
    return (
        Section(
            "Agreement",
            (
                f"{terms.title}",
                f"Agreement {terms.agreement_id}, version {terms.version}, hub {terms.hub_id}.",
                *(
                    (f"This version amends the version with digest {terms.amends_digest}.",)
                    if terms.amends_digest
                    else ()
                ),
            ),
        ),
        Section("Parties", parties),
        Section("Purpose", (terms.purpose, f"Coded purpose: {purpose}.")),
        Section("Data covered", datasets),
        Section(
            "What may be asked",
            (
                f"Only these statistics: {measures}.",
                "Columns that may be measured: "
                f"{_names(tuple(labelled(c, labels) for c in terms.columns), 'none')}.",
                "Columns that may be used to break results down or filter them: "
                f"{_names(tuple(labelled(d, labels) for d in terms.dims), 'none')}.",
                f"At most {terms.max_dims} break-down columns in one question.",
                "Only differentially private aggregates leave a node; no record, no exact count.",
            ),
        ),
        Section(
            "Who may ask",
            (
                "Analysts of: "
                + _names(terms.analyst_organisations, "no organisation (nobody may ask)")
                + ".",
            ),
        ),
        Section(
            "Small groups", (*_small_cells_text(terms), width, f"Where this is applied: {where}.")
        ),
        Section("Grids", (_grids_text(terms),)),
        Section("Combining nodes", (_aggregation_text(terms),)),
        Section(
            "Privacy budget",
            (
                f"Each question may cost at most rho = {terms.rho_per_query_max:g} (zCDP), and "
                f"at least rho = {terms.rho_floor:g}, so that every answer carries noise a "
                "reader can use and a budget buys a bounded number of answers.",
                f"Each node grants at most rho = {terms.rho_budget:g} "
                f"{PERIOD_TEXT[terms.budget_period]}.",
                "When a node's budget is spent, that node answers no more questions under this "
                "agreement until the next period.",
                "What the whole budget means: " + anchor_text(terms.rho_budget),
            ),
        ),
        Section(
            "Use of results",
            (f"Results {DISSEMINATION_TEXT[terms.dissemination]}.",),
        ),
        Section(
            "Validity",
            (
                validity_text(terms),
                "Each CSO steward may suspend or revoke this agreement at their own node at any"
                " time; it then takes effect at that node immediately.",
            ),
        ),
    )


def one_person_release_chance(*, rho: float, min_cell_size: int) -> float:
    """How often a cell of one respondent passes a minimum cell size judged on its noisy
    count, for an unweighted count of a respondent counted once at cost `rho`: the discrete
    Gaussian noise has sd 1 / sqrt(2 rho); normal approximation with continuity correction."""
    sigma = 1 / math.sqrt(2 * rho)
    return 0.5 * math.erfc((min_cell_size - 1 - 0.5) / (sigma * math.sqrt(2)))


def _small_cells_text(terms: AgreementTerms) -> tuple[str, ...]:
    """What the minimum cell size does, stated as what it is: a rule on a noisy count."""
    size = terms.min_cell_size
    if size <= 1:
        return (
            "No minimum cell size is set: every cell is released with its noise, however few"
            " respondents it holds (even one); a cell is withheld only when its noisy count is"
            " below 1. Each respondent is protected by the noise (differential privacy) alone.",
        )
    chance = one_person_release_chance(rho=terms.rho_per_query_max, min_cell_size=size)
    odds = (
        "fewer than 1 in 10,000 questions"
        if chance < 1e-4
        else f"about {100 * chance:.2g}% of questions"
    )
    return (
        f"A cell is withheld when its noisy count is below {size}: the count after the privacy"
        " noise is added (for shares and means, the noisy number of respondents in the group;"
        " for sums, their noisy count; for quantiles, the noisy total over the grid).",
        "The rule is judged on the noisy count, so it does not promise that small groups are"
        f" never shown: a cell of a single respondent is still released in {odds} asked at the"
        f" per-query cap (rho = {terms.rho_per_query_max:g}, a count of a dataset with one row"
        " per respondent), more often at a lower rho or when respondents have several rows,"
        f" and a cell of {size} or more respondents is sometimes withheld. What protects each"
        " respondent is the noise (differential privacy), whatever the size of the cell.",
    )


def _grids_text(terms: AgreementTerms) -> str:
    if terms.grids == "any":
        return (
            "Analysts may choose the candidate values of quantiles and the bin edges of"
            " histograms; each released grid is public and stated with the result."
        )
    listed = "; ".join(
        f"{g.column} {g.kind} {', '.join(f'{v:g}' for v in g.values)}" for g in terms.public_grids
    )
    return (
        "Quantile candidates and histogram edges come only from the public bounds in each"
        " dataset contract (the defaults), or from these grids: "
        + (listed or "none besides the defaults")
        + ". No analyst-chosen grid can isolate one respondent's value."
    )


def _aggregation_text(terms: AgreementTerms) -> str:
    if terms.aggregation == "per_node":
        return "Each node adds the full noise to its own answer; the hub adds the answers up."
    return (
        "Secure aggregation: for counts, shares and sums asked of two or more nodes together,"
        " each node adds only its share of the noise and sends its answer masked, so the hub"
        f" sees only the total of all nodes. With k nodes answering, each adds the noise for"
        f" k - {terms.collusion} nodes; each node's respondents keep the full guarantee"
        f" {collusion_text(terms.collusion)}. Other questions are answered with each node's"
        " full noise, and the result says so."
    )


def summary_text(terms: AgreementTerms, *, labels: Mapping[str, str] | None = None) -> str:
    """The plain-language rules as terminal text."""
    out: list[str] = []
    for section in plain_language(terms, labels=labels):
        out.append(section.heading.upper())
        out.extend(f"  {line}" for line in section.lines)
        out.append("")
    return "\n".join(out).rstrip() + "\n"
