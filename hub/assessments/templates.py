"""Assessment templates: a versioned set of indicators, written as YAML and checked here.

A DP indicator is an agreement-independent query (dataset, measure, column, value, filters,
rho) asked once per breakdown (e.g. none, by group, by sex), always split by country. A
self-reported indicator is answered by a country team: a yes/no/in-progress choice, a
number within a range, or a rubric score, each mapped to a score on a common rubric.
"""

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from contracts import budget as exact
from contracts.v1 import DatasetContract, Filter
from contracts.v1.query import MAX_GROUP_BY, Measure
from hub.assessments.exceptions import TemplateInvalid

SHIPPED = Path(__file__).parent / "shipped"
Theme = Literal["basic_services", "violence", "education", "participation", "partnership"]
THEMES: tuple[Theme, ...] = (
    "basic_services",
    "violence",
    "education",
    "participation",
    "partnership",
)
# An indicator id is also an SDMX code (CL_INDICATOR): upper case, digits, underscores.
IndicatorId = Annotated[str, Field(pattern=r"^[A-Z][A-Z0-9_]{1,39}$")]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class DpQuery(_Frozen):
    dataset: str = Field(min_length=1, max_length=63)
    measure: Measure
    column: str | None = None
    value: str | None = None
    filters: tuple[Filter, ...] = ()
    rho: float = Field(gt=0, le=10)


class DpIndicator(_Frozen):
    id: IndicatorId
    kind: Literal["dp"] = "dp"
    theme: Theme
    title: str = Field(min_length=1, max_length=200)
    query: DpQuery
    # Each breakdown is one federated query grouped by country and these dims.
    breakdowns: tuple[tuple[str, ...], ...] = ((),)

    @model_validator(mode="after")
    def _check(self) -> "DpIndicator":
        if len(set(self.breakdowns)) != len(self.breakdowns):
            raise ValueError("breakdowns repeat")
        for dims in self.breakdowns:
            if len(dims) > MAX_GROUP_BY - 1 or len(set(dims)) != len(dims):
                raise ValueError("a breakdown has too many or repeated dims")
            if {"country", "node"} & set(dims):
                raise ValueError("country is always a breakdown; do not name it")
        if self.query.measure == "share" and (
            self.query.column is None or self.query.value is None
        ):
            raise ValueError("a share needs a column and a value")
        return self

    @property
    def rho_per_node(self) -> Decimal:
        """One query per breakdown, each costing `query.rho` at every node (exact)."""
        return exact.total([self.query.rho] * len(self.breakdowns))


class ChoiceAnswer(_Frozen):
    type: Literal["choice"] = "choice"
    options: tuple[str, ...] = Field(min_length=2)
    # Score of each option on the rubric (same keys as options).
    scores: dict[str, float]

    @model_validator(mode="after")
    def _scored(self) -> "ChoiceAnswer":
        if set(self.scores) != set(self.options):
            raise ValueError("every option needs a score, and only options")
        return self


class NumberAnswer(_Frozen):
    type: Literal["number"] = "number"
    minimum: float
    maximum: float
    integer: bool = True
    # Thresholds: a value >= threshold scores at least that rubric score.
    score_thresholds: dict[float, float] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _range(self) -> "NumberAnswer":
        if self.maximum <= self.minimum:
            raise ValueError("maximum must be above minimum")
        return self


class RubricLevel(_Frozen):
    score: int = Field(ge=0, le=10)
    description: str = Field(min_length=1, max_length=300)


class RubricAnswer(_Frozen):
    type: Literal["rubric"] = "rubric"
    levels: tuple[RubricLevel, ...] = Field(min_length=2)

    @model_validator(mode="after")
    def _distinct(self) -> "RubricAnswer":
        scores = [level.score for level in self.levels]
        if len(set(scores)) != len(scores):
            raise ValueError("rubric scores repeat")
        return self


AnswerSpec = Annotated[ChoiceAnswer | NumberAnswer | RubricAnswer, Field(discriminator="type")]


class SelfReportedIndicator(_Frozen):
    id: IndicatorId
    kind: Literal["self_reported"] = "self_reported"
    theme: Theme
    title: str = Field(min_length=1, max_length=200)
    answer: AnswerSpec


Indicator = Annotated[DpIndicator | SelfReportedIndicator, Field(discriminator="kind")]


class Template(_Frozen):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{1,62}$")
    version: int = Field(ge=1)
    title: str = Field(min_length=1, max_length=200)
    description: str = ""
    max_rubric_score: int = Field(default=4, ge=1, le=10)
    indicators: tuple[Indicator, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> "Template":
        ids = [i.id for i in self.indicators]
        if len(set(ids)) != len(ids):
            raise ValueError("indicator ids repeat")
        return self

    @property
    def dp_indicators(self) -> tuple[DpIndicator, ...]:
        return tuple(i for i in self.indicators if isinstance(i, DpIndicator))

    @property
    def self_reported(self) -> tuple[SelfReportedIndicator, ...]:
        return tuple(i for i in self.indicators if isinstance(i, SelfReportedIndicator))

    def indicator(self, indicator_id: str) -> DpIndicator | SelfReportedIndicator | None:
        return next((i for i in self.indicators if i.id == indicator_id), None)


def parse_template(text: str) -> Template:
    """A template from YAML text; problems name fields and indicators, never values."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise TemplateInvalid([f"the template is not valid YAML{where}"]) from None
    if not isinstance(data, dict):
        raise TemplateInvalid(["the template must be a YAML mapping"])
    try:
        return Template.model_validate(data)
    except ValidationError as exc:
        raise TemplateInvalid(_problems(data, exc, yaml.compose(text))) from None


def _line(root: yaml.Node | None, loc: Sequence[int | str]) -> int | None:
    """The line (1-based) of the deepest YAML node `loc` reaches, to point an editor at it."""
    node = root
    line = None
    for part in loc:
        if node is None:
            break
        line = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            node = next((v for k, v in node.value if k.value == part), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            node = node.value[part] if part < len(node.value) else None
        else:
            node = None
    if node is not None:
        line = node.start_mark.line + 1
    return line


def _problems(
    data: dict[str, object], exc: ValidationError, root: yaml.Node | None = None
) -> list[str]:
    indicators = data.get("indicators")
    out = []
    errors = exc.errors()
    item_errors = any(len(e["loc"]) > 1 and e["loc"][0] == "indicators" for e in errors)
    for err in errors:
        loc = list(err["loc"])
        line = _line(root, [p for p in loc if p not in ("dp", "self_reported")])
        at = f" at line {line}" if line is not None else ""
        if item_errors and loc == ["indicators"] and err["type"] == "too_short":
            continue  # pydantic's follow-on to a failed item, not a second problem
        prefix = ""
        if len(loc) >= 2 and loc[0] == "indicators" and isinstance(loc[1], int):
            ident = None
            if isinstance(indicators, list) and loc[1] < len(indicators):
                item = indicators[loc[1]]
                ident = item.get("id") if isinstance(item, dict) else None
            safe = (
                ident
                if isinstance(ident, str) and re.fullmatch(r"[A-Za-z0-9_]{1,40}", ident)
                else f"#{loc[1] + 1}"
            )
            prefix = f"indicator {safe}: "
            loc = loc[2:]
            if loc and loc[0] in ("dp", "self_reported"):
                loc = loc[1:]  # the union's tag, not a field
        field_name = ".".join(str(p) for p in loc) or "(template)"
        out.append(f"{prefix}{field_name} ({err['type']}: {err['msg']}){at}")
    return sorted(set(out))


def load_template(path: Path) -> Template:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        raise TemplateInvalid([f"cannot read {path.name}"]) from None
    return parse_template(text)


def shipped_templates() -> list[Template]:
    return [load_template(p) for p in sorted(SHIPPED.glob("*.yaml"))]


@dataclass(frozen=True)
class DatasetShape:
    """What the hub knows of a dataset: measurable columns, groupable dims, known levels."""

    columns: frozenset[str]
    dims: frozenset[str]
    levels: Mapping[str, frozenset[str]] = field(default_factory=dict)


Catalogue = Mapping[str, DatasetShape]


def catalogue_from_contracts(contracts: Sequence[DatasetContract]) -> dict[str, DatasetShape]:
    """Shapes from published dataset contracts (levels are the union over nodes)."""
    out: dict[str, DatasetShape] = {}
    for contract in contracts:
        categorical = {
            c.name: frozenset(level.code for level in c.levels)
            for c in contract.columns
            if c.type == "categorical" and c.queryable
        }
        measurable = {c.name for c in contract.columns if c.queryable}
        before = out.get(contract.name)
        if before is not None:
            merged = {k: v | categorical.get(k, frozenset()) for k, v in before.levels.items()}
            merged.update({k: v for k, v in categorical.items() if k not in merged})
            categorical = merged
            measurable |= before.columns
        out[contract.name] = DatasetShape(
            columns=frozenset(measurable), dims=frozenset(categorical), levels=categorical
        )
    return out


def check_template(template: Template, catalogue: Catalogue) -> list[str]:
    """Problems of a template against the datasets the hub knows (empty when fine)."""
    problems = []
    for ind in template.dp_indicators:
        q = ind.query
        shape = catalogue.get(q.dataset)
        if shape is None:
            problems.append(f"indicator {ind.id}: unknown dataset {q.dataset!r}")
            continue
        if q.column is not None and q.column not in shape.columns:
            problems.append(f"indicator {ind.id}: unknown column {q.column!r} in {q.dataset!r}")
        elif (
            q.value is not None
            and q.column is not None
            and q.value not in shape.levels.get(q.column, frozenset({q.value}))
        ):
            problems.append(f"indicator {ind.id}: {q.column!r} has no such level")
        for flt in q.filters:
            if flt.column not in shape.dims:
                problems.append(f"indicator {ind.id}: unknown filter column {flt.column!r}")
            elif flt.column in shape.levels and not set(flt.levels) <= shape.levels[flt.column]:
                problems.append(f"indicator {ind.id}: a filter level of {flt.column!r} is unknown")
        for dims in ind.breakdowns:
            problems += [
                f"indicator {ind.id}: unknown breakdown dim {dim!r}"
                for dim in dims
                if dim not in shape.dims
            ]
    return problems


def validate_template(template: Template, catalogue: Catalogue) -> Template:
    problems = check_template(template, catalogue)
    if problems:
        raise TemplateInvalid(problems, code="template_unknown_reference")
    return template
