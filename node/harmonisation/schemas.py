"""The mapping file (YAML the steward edits) and the local validation report.

A mapping never leaves the node: only `MappingCoverage` (per variable status) does.
"""

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from contracts.v1.harmonisation import VariableStatus

DeriveMethod = Literal["age_band_from_age", "age_band_from_birth_year", "wg_identifier"]


class _Rule(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Rename(_Rule):
    """The local column already holds the module's codes (or numbers on its scale)."""

    rule: Literal["rename"]
    column: str


class Recode(_Rule):
    """Many local levels to one module level; local levels left out become missing."""

    rule: Literal["recode"]
    column: str
    levels: dict[str, str] = Field(min_length=1)


class Derive(_Rule):
    """Computed from one or more local columns by a named method.

    age_band_from_age: inputs [age]. age_band_from_birth_year: inputs [birth_year] and
    `reference_year`. wg_identifier: six inputs in WG order (seeing, hearing, walking,
    cognition, self-care, communication) and `levels` recoding local answers to the four WG
    levels (no_difficulty, some_difficulty, a_lot_of_difficulty, cannot_do_at_all).
    """

    rule: Literal["derive"]
    method: DeriveMethod
    inputs: tuple[str, ...] = Field(min_length=1)
    reference_year: int | None = None
    levels: dict[str, str] = Field(default_factory=dict)


class Rescale(_Rule):
    """A numeric local scale `source_range` mapped linearly onto the module's bounds."""

    rule: Literal["rescale"]
    column: str
    source_range: tuple[float, float]


class NotCollected(_Rule):
    rule: Literal["not_collected"]


Rule = Annotated[Rename | Recode | Derive | Rescale | NotCollected, Field(discriminator="rule")]


class Mapping(BaseModel):
    """How one local dataset answers one module version."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    module: str
    version: int = Field(ge=1)
    dataset: str
    contract_version: int = Field(ge=1)
    variables: dict[str, Rule]

    def status(self, variable: str) -> VariableStatus:
        rule = self.variables.get(variable)
        if rule is None or rule.rule == "not_collected":
            return "not_collected"
        return "derived" if rule.rule in ("derive", "rescale") else "mapped"


class VariableReport(BaseModel):
    """Local-only: what validation found for one variable (counts never leave the node)."""

    model_config = ConfigDict(frozen=True)

    variable: str
    status: VariableStatus
    unmapped_levels: tuple[str, ...] = ()
    rows_missing: int = 0
    share_missing: float = 0.0


class ValidationReport(BaseModel):
    model_config = ConfigDict(frozen=True)

    module: str
    version: int
    dataset: str
    rows: int
    errors: tuple[str, ...] = ()
    variables: tuple[VariableReport, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.errors
