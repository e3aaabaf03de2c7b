"""Dataset contract: the public metadata of a node dataset (codebook, levels, bounds, privacy)."""

from typing import Literal

from pydantic import Field, model_validator

from contracts.v1.base import WireModel

Name = str
ColumnType = Literal["categorical", "integer", "number", "string", "datetime"]
ColumnRole = Literal["dimension", "measure", "unit_key", "identifier", "free_text", "other"]


class Level(WireModel):
    """One public category level: the stored code and its human labels by language."""

    code: str = Field(min_length=1, max_length=200)
    labels: dict[str, str] = Field(default_factory=dict)


class Column(WireModel):
    """One column of the dataset as the codebook describes it."""

    name: Name = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
    type: ColumnType
    role: ColumnRole = "dimension"
    title: str | None = None
    levels: tuple[Level, ...] = ()
    lower: float | None = None
    upper: float | None = None
    nullable: bool = True

    @model_validator(mode="after")
    def _check(self) -> "Column":
        if self.type == "categorical" and not self.levels:
            raise ValueError(f"categorical column {self.name!r} needs its public levels")
        if self.type != "categorical" and self.levels:
            raise ValueError(f"only categorical columns have levels ({self.name!r})")
        codes = [level.code for level in self.levels]
        if len(set(codes)) != len(codes):
            raise ValueError(f"column {self.name!r} repeats a level")
        if (self.lower is None) != (self.upper is None):
            raise ValueError(f"column {self.name!r} needs both bounds or neither")
        if self.lower is not None and self.upper is not None and self.lower > self.upper:
            raise ValueError(f"column {self.name!r} has lower bound above upper bound")
        return self

    @property
    def level_codes(self) -> tuple[str, ...]:
        return tuple(level.code for level in self.levels)

    @property
    def queryable(self) -> bool:
        """Identifiers, free text and the unit key can never be measured or grouped on."""
        return self.role in ("dimension", "measure")


class PrivacyUnit(WireModel):
    """Who is protected: one unit (a respondent by default) and how many rows it may have."""

    unit_key: Name | None = None
    max_contributions: int = Field(default=1, ge=1, le=1000)


class DatasetContract(WireModel):
    """Everything public about one dataset version; levels and bounds never come from data."""

    name: Name = Field(pattern=r"^[a-z][a-z0-9_]{0,62}$")
    version: int = Field(ge=1)
    title: str
    description: str = ""
    language: str = "en"
    columns: tuple[Column, ...]
    privacy: PrivacyUnit = PrivacyUnit()

    @model_validator(mode="after")
    def _check(self) -> "DatasetContract":
        names = [c.name for c in self.columns]
        if len(set(names)) != len(names):
            raise ValueError("column names must be unique")
        unit = self.privacy.unit_key
        if unit is not None and unit not in names:
            raise ValueError(f"unit key {unit!r} is not a column")
        return self

    def column(self, name: str) -> Column | None:
        return next((c for c in self.columns if c.name == name), None)


class DatasetInfo(WireModel):
    """What a node says publicly about one dataset it serves."""

    contract: DatasetContract
    contract_digest: str
