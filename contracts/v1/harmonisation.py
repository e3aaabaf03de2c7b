"""Harmonisation: shared indicator modules, the module view of a dataset, and coverage.

A module is a named, versioned set of harmonised variables (levels, bounds, definitions,
sources) that the hub ships and signs. Each node maps its own dataset onto a module (the
mapping never leaves the node); a query may then name the module instead of a dataset.
What a node publishes about its mappings is `MappingCoverage`: per variable whether it is
mapped, derived or not collected, never levels, counts or data.
"""

import re
from collections.abc import Collection
from datetime import datetime
from typing import Literal

from pydantic import Field, model_validator

from contracts.v1.base import WireModel
from contracts.v1.dataset import Column, ColumnRole, DatasetContract, Level, PrivacyUnit

VariableType = Literal["categorical", "integer", "number", "string"]
VariableStatus = Literal["mapped", "derived", "not_collected"]
ModuleName = str
NAME_PATTERN = r"^[a-z][a-z0-9_]{0,62}$"
# The refusal code a node answers with when a queried variable is not collected there; its
# message is built and read by the two functions below, so the hub can say per variable
# which nodes could not answer (rather than counting them as zero).
NOT_COLLECTED_CODE = "variable_not_collected"
_NOT_COLLECTED_PREFIX = "not collected at this node: "


class Source(WireModel):
    """Where a module's definitions come from (a standard, a question set, a guideline)."""

    title: str = Field(min_length=1)
    publisher: str = Field(min_length=1)
    url: str | None = None
    year: int | None = None


class ModuleLevel(WireModel):
    """One harmonised level: its code, labels by language, synonyms used when drafting a
    mapping, and for age-like bands the inclusive integer range the band covers."""

    code: str = Field(min_length=1, max_length=200)
    labels: dict[str, str] = Field(default_factory=dict)
    synonyms: tuple[str, ...] = ()
    lower: int | None = None
    upper: int | None = None

    @model_validator(mode="after")
    def _check(self) -> "ModuleLevel":
        if (self.lower is None) != (self.upper is None):
            raise ValueError(f"level {self.code!r} needs both range ends or neither")
        if self.lower is not None and self.upper is not None and self.lower > self.upper:
            raise ValueError(f"level {self.code!r} has its range ends reversed")
        return self


class ModuleVariable(WireModel):
    """One harmonised variable with its definition.

    `hub_dim` variables (country) are answered by the hub from each node's registered
    identity, never through a mapping. `string` variables are documented for mapping but
    never grouped on (their levels are not shared across countries).
    """

    name: str = Field(pattern=NAME_PATTERN)
    title: str = Field(min_length=1)
    definition: str = Field(min_length=1)
    type: VariableType
    levels: tuple[ModuleLevel, ...] = ()
    lower: float | None = None
    upper: float | None = None
    synonyms: tuple[str, ...] = ()
    hub_dim: bool = False
    derive: Literal["wg_identifier"] | None = Field(
        default=None, description="the standard derivation a mapping draft should propose"
    )
    source: str | None = Field(default=None, description="a reference beyond the module's")

    @model_validator(mode="after")
    def _check(self) -> "ModuleVariable":
        if self.type == "categorical" and not self.levels:
            raise ValueError(f"categorical variable {self.name!r} needs its levels")
        if self.type != "categorical" and self.levels:
            raise ValueError(f"only categorical variables have levels ({self.name!r})")
        codes = [level.code for level in self.levels]
        if len(set(codes)) != len(codes):
            raise ValueError(f"variable {self.name!r} repeats a level")
        if (self.lower is None) != (self.upper is None):
            raise ValueError(f"variable {self.name!r} needs both bounds or neither")
        if self.type in ("integer", "number") and self.lower is None:
            raise ValueError(f"numeric variable {self.name!r} needs public bounds")
        if self.lower is not None and self.upper is not None and self.lower > self.upper:
            raise ValueError(f"variable {self.name!r} has lower bound above upper bound")
        return self

    @property
    def level_codes(self) -> tuple[str, ...]:
        return tuple(level.code for level in self.levels)

    @property
    def mappable(self) -> bool:
        """Answered through a node's mapping (not by the hub)."""
        return not self.hub_dim


class Module(WireModel):
    """A shared, versioned set of harmonised variables, shipped and signed by the hub."""

    name: ModuleName = Field(pattern=NAME_PATTERN)
    version: int = Field(ge=1)
    title: str = Field(min_length=1)
    description: str = ""
    sources: tuple[Source, ...] = Field(min_length=1)
    variables: tuple[ModuleVariable, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _check(self) -> "Module":
        names = [v.name for v in self.variables]
        if len(set(names)) != len(names):
            raise ValueError(f"module {self.name!r} repeats a variable")
        return self

    def variable(self, name: str) -> ModuleVariable | None:
        return next((v for v in self.variables if v.name == name), None)

    @property
    def ref(self) -> "ModuleRef":
        return ModuleRef(name=self.name, version=self.version)


class ModuleRef(WireModel):
    """A module named by an agreement or a mapping: exactly one version."""

    name: ModuleName = Field(pattern=NAME_PATTERN)
    version: int = Field(ge=1)


class MappingCoverage(WireModel):
    """What a node says about one of its mappings: per variable status, nothing else."""

    module: ModuleName
    version: int = Field(ge=1)
    variables: dict[str, VariableStatus]


class CoverageReport(WireModel):
    """A node's signed statement of its mappings' coverage (replaces its previous one)."""

    node_id: str
    hub_id: str
    issued_at: datetime
    nonce: str = Field(min_length=16, max_length=64)
    mappings: tuple[MappingCoverage, ...] = ()


class VariableAnswer(WireModel):
    """Per queried module variable: which nodes answered it and which do not collect it."""

    variable: str
    answered: tuple[str, ...] = ()
    not_collected: tuple[str, ...] = ()


class NodeCoverage(WireModel):
    """One node's published status for one module variable (hub coverage view)."""

    node_id: str
    country: str | None = None
    status: VariableStatus


class VariableCoverage(WireModel):
    variable: str
    title: str
    nodes: tuple[NodeCoverage, ...] = ()
    countries: tuple[str, ...] = Field(
        default=(), description="countries with at least one node that maps or derives it"
    )


class ModuleCoverageView(WireModel):
    """Per module variable, which nodes and countries can answer it (from published metadata)."""

    module: ModuleName
    version: int
    variables: tuple[VariableCoverage, ...]


_VIEW_ROLE: dict[VariableType, ColumnRole] = {
    "categorical": "dimension",
    "integer": "measure",
    "number": "measure",
    "string": "other",
}


def module_contract(
    module: Module,
    *,
    privacy: PrivacyUnit,
    unit_key: str | None,
    collected: Collection[str] | None = None,
) -> DatasetContract:
    """The module view as a dataset contract: levels and bounds from the module, privacy
    (unit key, contributions, weight) from the source dataset, so the DP engine runs on it
    unchanged. Hub dims are absent (never sent to a node), and so are variables outside
    `collected` (when given); string variables are not queryable."""
    columns: list[Column] = []
    for variable in module.variables:
        if not variable.mappable or (collected is not None and variable.name not in collected):
            continue
        columns.append(
            Column(
                name=variable.name,
                type=variable.type,
                role=_VIEW_ROLE[variable.type],
                title=variable.title,
                levels=tuple(Level(code=lv.code, labels=dict(lv.labels)) for lv in variable.levels),
                lower=variable.lower,
                upper=variable.upper,
                description=variable.definition,
            )
        )
    # The source's unit key and weight ride along under their own names, for the engine.
    if unit_key is not None:
        columns.append(Column(name=unit_key, type="string", role="unit_key"))
    if privacy.weight_column is not None and privacy.weight_column != unit_key:
        columns.append(Column(name=privacy.weight_column, type="number", role="other"))
    return DatasetContract(
        name=module.name,
        version=module.version,
        title=module.title,
        description=module.description,
        columns=tuple(columns),
        privacy=PrivacyUnit(
            unit_key=unit_key,
            max_contributions=privacy.max_contributions,
            weight_column=privacy.weight_column,
            weight_upper=privacy.weight_upper,
        ),
    )


def not_collected_message(variables: tuple[str, ...] | list[str]) -> str:
    """The refusal message naming the variables a node does not collect (names only)."""
    return _NOT_COLLECTED_PREFIX + ", ".join(variables)


def not_collected_variables(message: str | None) -> tuple[str, ...]:
    """The variables named by `not_collected_message` (empty for any other message)."""
    if message is None or not message.startswith(_NOT_COLLECTED_PREFIX):
        return ()
    names = message[len(_NOT_COLLECTED_PREFIX) :].split(", ")
    return tuple(n for n in names if re.fullmatch(NAME_PATTERN, n))
