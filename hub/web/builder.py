"""The analyst's query builder: every option comes from the chosen agreement and the nodes'
public contracts, in the reader's language; the form says which agreement it was built for.

Nothing here is translated: the page gets codes and parameters and says them in words in
its templates (`_builder.html`, `_summary.html`), so every sentence is in the catalogues.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session

from contracts import budget as exact
from contracts.accuracy import predicted_half_width
from contracts.agreement_rules import HUB_DIMS
from contracts.v1 import Column, DatasetContract, QuerySpec
from hub.agreements import service as agreements
from hub.agreements.schemas import AgreementRead
from hub.auth.schemas import User
from hub.nodes import contracts as node_contracts
from hub.nodes import service as federation
from hub.queries.contract_check import NUMERIC_MEASURES, Difference, differences
from hub.web.labels import country_name, level_label

MAX_FILTERS = 2
MAX_GROUPS = 3
# The fields each measure uses (everything else is hidden and not sent for it).
FIELDS_BY_MEASURE: dict[str, tuple[str, ...]] = {
    "count": (),
    "share": ("column", "value"),
    "sum": ("column", "weighted"),
    "mean": ("column", "weighted"),
    "quantile": ("column", "quantiles"),
    "histogram": ("column",),
}
# The group size a ratio's predicted interval is given for.
PREDICTION_GROUP = 100


@dataclass(frozen=True)
class Choice:
    value: str
    label: str


@dataclass(frozen=True)
class FieldError:
    """A refusal tied to one field: `code` says what, `value` what was given, `allowed` the
    public values (levels) where there are any."""

    code: str
    value: str = ""
    allowed: tuple[str, ...] = ()
    detail: str = ""


@dataclass(frozen=True)
class Builder:
    """What the analyst may ask under the chosen agreement, with what was typed kept."""

    agreements: tuple[Choice, ...]
    chosen: AgreementRead | None = None
    dataset: str = ""
    datasets: tuple[str, ...] = ()
    measures: tuple[str, ...] = ()
    measure: str = "count"
    columns: tuple[Choice, ...] = ()
    column: str = ""
    value_levels: tuple[Choice, ...] = ()
    dims: tuple[Choice, ...] = ()
    dim_levels: Mapping[str, tuple[Choice, ...]] = field(default_factory=dict)
    group_slots: int = 0
    rho_cap: float = 0.0
    rho_budget: Decimal = exact.ZERO
    rho_spent: Decimal = exact.ZERO
    rho: float = 0.05
    values: Mapping[str, str] = field(default_factory=dict)
    filter_levels: Mapping[int, tuple[str, ...]] = field(default_factory=dict)
    differences: tuple[Difference, ...] = ()
    nodes_total: int = 0
    nodes_with_contract: int = 0
    predicted: float | None = None
    prediction_group: int = PREDICTION_GROUP
    errors: Mapping[str, FieldError] = field(default_factory=dict)

    @property
    def options_for(self) -> str:
        """The agreement version and dataset these options were built for (sent back with
        the form: a run whose agreement no longer matches them is refused)."""
        if self.chosen is None:
            return ""
        terms = self.chosen.agreement.terms
        return f"{terms.agreement_id}|{terms.version}|{self.dataset}"

    @property
    def rho_left(self) -> Decimal:
        return exact.remaining(self.rho_budget, self.rho_spent)

    def shows(self, name: str) -> bool:
        return name in FIELDS_BY_MEASURE.get(self.measure, ())


def _label(column: Column | None, name: str) -> str:
    return (column.title if column is not None and column.title else None) or name


def _merged_levels(columns: Sequence[Column], lang: str) -> tuple[Choice, ...]:
    seen: dict[str, Choice] = {}
    for column in columns:
        for level in column.levels:
            if level.code not in seen:
                seen[level.code] = Choice(level.code, level_label(level, lang))
    return tuple(seen.values())


def _filter_levels(form: Any, number: int) -> tuple[str, ...]:
    name = f"filter_levels_{number}"
    raw = form.getlist(name) if hasattr(form, "getlist") else form.get(name, [])
    if isinstance(raw, str):
        raw = [raw]
    return tuple(v.strip() for v in raw if isinstance(v, str) and v.strip())


def _usable(session: Session, user: User) -> list[AgreementRead]:
    return [
        read
        for read in agreements.list_agreements(session=session, user=user)
        if read.status == "active"
        and user.organisation in read.agreement.terms.analyst_organisations
    ]


def contract_needs(*, session: Session, user: User) -> list[tuple[tuple[str, ...], str, int]]:
    """(node ids, dataset, contract version) of every agreement the user may query now."""
    return [
        (read.agreement.terms.node_ids, ref.name, ref.contract_version)
        for read in _usable(session, user)
        for ref in read.agreement.terms.datasets
    ]


def build(
    *,
    session: Session,
    user: User,
    lang: str,
    form: Any,
    errors: Mapping[str, FieldError] | None = None,
) -> Builder:
    """The builder for the agreement (and dataset, measure, column) the form names; the
    first usable agreement when it names none."""
    values = {k: v.strip() for k, v in form.items() if isinstance(v, str)}
    usable = _usable(session, user)
    choices = tuple(Choice(r.agreement.terms.agreement_id, r.agreement.terms.title) for r in usable)
    wanted = values.get("agreement_id")
    chosen = next((r for r in usable if r.agreement.terms.agreement_id == wanted), None)
    if chosen is None and usable:
        chosen = usable[0]
    if chosen is None:
        session.rollback()
        return Builder(agreements=choices, values=values, errors=errors or {})
    terms = chosen.agreement.terms
    names = tuple(d.name for d in terms.datasets)
    dataset = values.get("dataset", "")
    dataset = dataset if dataset in names else names[0]
    version = next(d.contract_version for d in terms.datasets if d.name == dataset)
    held = node_contracts.contracts_for(
        session=session, node_ids=terms.node_ids, dataset=dataset, version=version
    )
    measure = values.get("measure") if values.get("measure") in terms.measures else None
    measure = measure or terms.measures[0]

    def columns_named(name: str) -> list[Column]:
        return [c for contract in held.values() if (c := contract.column(name)) is not None]

    def fits(name: str) -> bool:
        found = columns_named(name)
        if not found:
            return not held  # nothing known: offer what the agreement allows
        if measure in NUMERIC_MEASURES:
            return any(c.type in ("integer", "number") for c in found)
        return any(c.type == "categorical" for c in found)

    first = _first_contract(held)
    columns = tuple(
        Choice(name, _label(first.column(name) if first else None, name))
        for name in terms.columns
        if fits(name)
    )
    column = values.get("column", "")
    if column not in {c.value for c in columns}:
        column = columns[0].value if columns and measure != "count" else ""
    value_levels = _merged_levels(columns_named(column), lang) if column else ()
    dims = tuple(
        Choice(name, _label(first.column(name) if first else None, name))
        for name in (*terms.dims, *HUB_DIMS)
    )
    dim_levels: dict[str, tuple[Choice, ...]] = {
        name: _merged_levels(columns_named(name), lang) for name in terms.dims
    }
    nodes = {n.node_id: n for n in federation.list_nodes(session=session)}
    dim_levels["country"] = tuple(
        Choice(country, country_name(country, lang))
        for country in sorted({nodes[n].country for n in terms.node_ids if n in nodes})
    )
    dim_levels["node"] = tuple(
        Choice(n, nodes[n].name if n in nodes else n) for n in terms.node_ids
    )
    try:
        rho = float(values.get("rho") or min(terms.rho_per_query_max, 0.05))
    except ValueError:
        rho = min(terms.rho_per_query_max, 0.05)
    measured = first.column(column) if first and column else None
    bounds = (
        (measured.lower, measured.upper)
        if measured is not None and measured.lower is not None and measured.upper is not None
        else None
    )
    predicted = predicted_half_width(
        measure=measure,
        rho=rho,
        nodes=max(1, len(terms.node_ids)),
        max_contributions=first.privacy.max_contributions if first else 1,
        bounds=bounds,
        group_size=PREDICTION_GROUP,
    )
    shown = {*terms.dims, *(c.value for c in columns)}
    builder = Builder(
        agreements=choices,
        chosen=chosen,
        dataset=dataset,
        datasets=names,
        measures=tuple(terms.measures),
        measure=measure,
        columns=columns,
        column=column,
        value_levels=value_levels,
        dims=dims,
        dim_levels=dim_levels,
        group_slots=min(terms.max_dims, MAX_GROUPS),
        rho_cap=terms.rho_per_query_max,
        rho_budget=exact.rho(terms.rho_budget),
        rho_spent=chosen.rho_spent_at_hub,
        rho=rho,
        values=values,
        filter_levels={i: _filter_levels(form, i) for i in range(1, MAX_FILTERS + 1)},
        differences=tuple(differences(held, tuple(sorted(shown)))),
        nodes_total=len(terms.node_ids),
        nodes_with_contract=len(held),
        predicted=predicted,
        errors=errors or {},
    )
    session.rollback()
    return builder


def _first_contract(held: Mapping[str, DatasetContract]) -> DatasetContract | None:
    return held[sorted(held)[0]] if held else None


def spec_from_form(form: Any) -> QuerySpec:
    """The builder's form as a QuerySpec: only the fields the measure uses are read.

    Raises `FormErrors` naming each field that does not hold, with the value given."""
    problems: dict[str, FieldError] = {}
    measure = _text(form, "measure")
    used = FIELDS_BY_MEASURE.get(measure, ())
    group_by = [v for i in range(1, MAX_GROUPS + 1) if (v := _text(form, f"group_by_{i}"))]
    if len(set(group_by)) != len(group_by):
        problems["group_by_2"] = FieldError("repeated_breakdown")
    filters = []
    for i in range(1, MAX_FILTERS + 1):
        column = _text(form, f"filter_column_{i}")
        levels = _filter_levels(form, i)
        if column and levels:
            filters.append({"column": column, "levels": levels})
        elif column:
            problems[f"filter_levels_{i}"] = FieldError("filter_needs_levels")
    quantiles: tuple[float, ...] | None = None
    if "quantiles" in used and (text := _text(form, "quantiles")):
        try:
            quantiles = tuple(float(p) for p in text.replace(";", ",").split(",") if p.strip())
            if not all(0 < q < 1 for q in quantiles):
                raise ValueError
        except ValueError:
            problems["quantiles"] = FieldError("quantiles_invalid", value=text)
    rho_text = _text(form, "rho")
    try:
        rho = float(rho_text)
        if not rho > 0:
            raise ValueError
    except ValueError:
        problems["rho"] = FieldError("rho_invalid", value=rho_text)
        rho = 0.0
    if "column" in used and not _text(form, "column"):
        problems["column"] = FieldError("column_needed")
    if "value" in used and not _text(form, "value"):
        problems["value"] = FieldError("value_needed")
    if problems:
        raise FormErrors(problems)
    data = {
        "agreement_id": _text(form, "agreement_id"),
        "dataset": _text(form, "dataset"),
        "measure": measure,
        "column": _text(form, "column") if "column" in used else None,
        "value": _text(form, "value") if "value" in used else None,
        "group_by": tuple(group_by),
        "filters": tuple(filters),
        "rho": rho,
        "weighted": "weighted" in used and _text(form, "weighted") == "yes",
        "quantiles": quantiles,
    }
    try:
        return QuerySpec.model_validate(data)
    except ValueError as exc:  # pydantic's ValidationError: say which field, in words
        fields = _validation_fields(exc)
        raise FormErrors(
            {f: FieldError("invalid_value", value=_text(form, f)) for f in fields}
        ) from exc


def _validation_fields(exc: Exception) -> list[str]:
    errors = getattr(exc, "errors", None)
    names: list[str] = []
    if callable(errors):
        for error in errors():
            loc = [str(p) for p in error.get("loc", ())]
            name = loc[0] if loc else "form"
            if name == "filters":
                name = f"filter_levels_{int(loc[1]) + 1}" if len(loc) > 1 else "filter_levels_1"
            elif name == "group_by":
                name = "group_by_1"
            names.append(name)
    return sorted(set(names)) or ["form"]


def _text(form: Any, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


class FormErrors(Exception):
    """Fields of the builder that do not hold, each with its own error."""

    def __init__(self, errors: Mapping[str, FieldError]) -> None:
        super().__init__(", ".join(sorted(errors)))
        self.errors = dict(errors)
