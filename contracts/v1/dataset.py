"""Dataset contract: the public metadata of a node dataset (codebook, levels, bounds, privacy).

A contract can be written as a Frictionless Table Schema with an `x-privacy` block
(`DatasetContract.to_table_schema` / `from_table_schema`); the two forms round-trip exactly.
"""

from datetime import date
from typing import Any, Literal

from pydantic import Field, SerializerFunctionWrapHandler, model_serializer, model_validator

from contracts.v1.base import MAX_VERSION, WireModel

Name = str
ColumnType = Literal["categorical", "integer", "number", "string", "datetime"]
ColumnRole = Literal["dimension", "measure", "unit_key", "identifier", "free_text", "other"]
IdentifierTreatment = Literal["drop", "hash"]
# What an import does with a value outside a numeric column's public bounds: refuse the
# file (the default), or keep it and let every query clamp it to the bounds (the DP norm).
BoundsPolicy = Literal["refuse", "clip"]
CollectionMethod = Literal[
    "household_survey",
    "individual_survey",
    "community_scorecard",
    "key_informant_interview",
    "focus_group",
    "administrative",
    "other",
]
SamplingDesign = Literal[
    "census",
    "simple_random",
    "systematic",
    "stratified",
    "cluster",
    "multistage",
    "quota",
    "purposive",
    "snowball",
    "respondent_driven",
    "convenience",
    "other",
]
ConsentBasis = Literal[
    "informed_consent", "guardian_consent", "community_consent", "legal_obligation", "other"
]
TABLE_SCHEMA_PROFILE = "https://datapackage.org/profiles/2.0/tableschema.json"


class Level(WireModel):
    """One public category level: the stored code and its human labels by language."""

    code: str = Field(min_length=1, max_length=200)
    labels: dict[str, str] = Field(default_factory=dict)


# Fields added to Column after v1's first release, with their defaults: left out of the
# canonical JSON at the default, so the digest of every contract published before is unchanged.
_ADDED_DEFAULTS: dict[str, Any] = {"bounds_policy": "refuse", "bounds_rho": None, "collected": True}


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
    description: str | None = None
    treatment: IdentifierTreatment = Field(
        default="drop",
        description="identifiers only: dropped at import, or kept as a salted hash",
    )
    bounds_policy: BoundsPolicy = Field(
        default="refuse",
        description="values outside the bounds: refuse the import, or clip them at query time",
    )
    bounds_rho: float | None = Field(
        default=None,
        gt=0,
        description="the rho (zCDP) the node spent once to estimate these bounds from its data"
        " with a differentially private rule (node/privacy/bounds.py); unset when the bounds"
        " come from public knowledge (a form, a shared codebook, the steward)",
    )
    collected: bool = Field(
        default=True,
        description="False: a column of a shared codebook this node's survey does not collect;"
        " kept so partners' contracts match, never stored, and every query naming it is"
        " refused (variable_not_collected) rather than answered as zero",
    )

    @model_serializer(mode="wrap")
    def _omit_added_defaults(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        for name, default in _ADDED_DEFAULTS.items():
            if name in data and data[name] == default:
                del data[name]
        return data

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
        if self.lower is not None and self.type not in ("integer", "number"):
            raise ValueError(f"only numeric columns have bounds ({self.name!r})")
        if self.bounds_policy == "clip" and self.lower is None:
            raise ValueError(f"column {self.name!r} clips to bounds it does not have")
        if self.bounds_rho is not None and self.lower is None:
            raise ValueError(f"column {self.name!r} states the cost of bounds it does not have")
        if self.treatment == "hash" and self.role != "identifier":
            raise ValueError(f"only identifier columns can be hashed ({self.name!r})")
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
    weight_column: Name | None = Field(
        default=None, description="survey weight column; never grouped on or released alone"
    )
    weight_upper: float | None = Field(
        default=None, gt=0, description="public upper bound of one weight (lower bound is 0)"
    )

    @model_validator(mode="after")
    def _check(self) -> "PrivacyUnit":
        if (self.weight_column is None) != (self.weight_upper is None):
            raise ValueError("a weight column needs its upper bound, and a bound its column")
        return self


class Sampling(WireModel):
    """How respondents were chosen: the design and, in words, the frame and any stratification."""

    design: SamplingDesign
    description: str = ""
    target_population: str = ""


class Period(WireModel):
    """When the data were collected (first and last day of fieldwork)."""

    start: date
    end: date

    @model_validator(mode="after")
    def _check(self) -> "Period":
        if self.start > self.end:
            raise ValueError("the collection period ends before it starts")
        return self


class Geography(WireModel):
    """Where: the country as a UN M49 code and the districts covered (names or codes)."""

    country: str = Field(pattern=r"^\d{3}$", description="UN M49 numeric code, e.g. 524 (Nepal)")
    districts: tuple[str, ...] = ()
    description: str = ""


class Methodology(WireModel):
    """How the data were produced, so others can judge their quality (Copenhagen Framework)."""

    collection_method: CollectionMethod
    sampling: Sampling | None = None
    period: Period | None = None
    geography: Geography | None = None
    consent_basis: ConsentBasis | None = None
    consent_description: str = ""
    producer: str = Field(default="", description="the organisation that collected the data")
    notes: str = ""


class DatasetContract(WireModel):
    """Everything public about one dataset version; levels and bounds never come from data."""

    name: Name = Field(pattern=r"^[a-z][a-z0-9_]{0,62}$")
    version: int = Field(ge=1, le=MAX_VERSION)
    title: str
    description: str = ""
    language: str = "en"
    columns: tuple[Column, ...]
    privacy: PrivacyUnit = PrivacyUnit()
    methodology: Methodology | None = None

    @model_validator(mode="after")
    def _check(self) -> "DatasetContract":
        names = [c.name for c in self.columns]
        if len(set(names)) != len(names):
            raise ValueError("column names must be unique")
        unit = self.privacy.unit_key
        if unit is not None and unit not in names:
            raise ValueError(f"unit key {unit!r} is not a column")
        for name in (unit, self.privacy.weight_column):
            column = self.column(name) if name is not None else None
            if column is not None and not column.collected:
                raise ValueError(f"column {name!r} protects respondents: it must be collected")
        weight = self.privacy.weight_column
        if weight is not None:
            column = self.column(weight)
            if column is None:
                raise ValueError(f"weight column {weight!r} is not a column")
            if column.type not in ("integer", "number") or column.role in ("dimension", "unit_key"):
                raise ValueError(f"weight column {weight!r} must be a numeric non-dimension")
        return self

    def column(self, name: str) -> Column | None:
        return next((c for c in self.columns if c.name == name), None)

    def to_table_schema(self) -> dict[str, Any]:
        """This contract as a Frictionless Table Schema (v2) with `x-privacy` and `x-sauti`."""
        return _to_table_schema(self)

    @classmethod
    def from_table_schema(cls, descriptor: dict[str, Any]) -> "DatasetContract":
        """Read a Table Schema written by `to_table_schema` (and possibly edited by hand)."""
        return _from_table_schema(cls, descriptor)


class DatasetInfo(WireModel):
    """What a node says publicly about one dataset it serves."""

    contract: DatasetContract
    contract_digest: str


_FIELD_TYPE: dict[ColumnType, str] = {
    "categorical": "string",
    "integer": "integer",
    "number": "number",
    "string": "string",
    "datetime": "datetime",
}


def _to_field(column: Column) -> dict[str, Any]:
    field: dict[str, Any] = {"name": column.name, "type": _FIELD_TYPE[column.type]}
    if column.title is not None:
        field["title"] = column.title
    if column.description is not None:
        field["description"] = column.description
    constraints: dict[str, Any] = {}
    if not column.nullable:
        constraints["required"] = True
    if column.levels:
        constraints["enum"] = list(column.level_codes)
        field["categories"] = [
            {"value": level.code, "label": level.labels.get("en", level.code)}
            for level in column.levels
        ]
        field["x-labels"] = {level.code: dict(level.labels) for level in column.levels}
    if column.lower is not None:
        constraints["minimum"] = column.lower
        constraints["maximum"] = column.upper
    if constraints:
        field["constraints"] = constraints
    return field


def _to_table_schema(contract: DatasetContract) -> dict[str, Any]:
    by_role: dict[str, list[str]] = {}
    for column in contract.columns:
        by_role.setdefault(column.role, []).append(column.name)
    privacy: dict[str, Any] = {
        "unit_key": contract.privacy.unit_key,
        "max_contributions": contract.privacy.max_contributions,
        "identifiers": [
            {"name": c.name, "treatment": c.treatment}
            for c in contract.columns
            if c.role == "identifier"
        ],
        "free_text": by_role.get("free_text", []),
        "dimensions": by_role.get("dimension", []),
        "measures": by_role.get("measure", []),
        "other": by_role.get("other", []),
        "bounds": {
            c.name: {"lower": c.lower, "upper": c.upper}
            | ({"policy": c.bounds_policy} if c.bounds_policy != "refuse" else {})
            | ({"rho": c.bounds_rho} if c.bounds_rho is not None else {})
            for c in contract.columns
            if c.lower is not None
        },
    }
    not_collected = [c.name for c in contract.columns if not c.collected]
    if not_collected:
        privacy["not_collected"] = not_collected
    if contract.privacy.weight_column is not None:
        privacy["weight"] = {
            "column": contract.privacy.weight_column,
            "upper": contract.privacy.weight_upper,
        }
    descriptor: dict[str, Any] = {
        "$schema": TABLE_SCHEMA_PROFILE,
        "fields": [_to_field(c) for c in contract.columns],
        "missingValues": [""],
        "x-sauti": {
            "name": contract.name,
            "version": contract.version,
            "title": contract.title,
            "description": contract.description,
            "language": contract.language,
            "methodology": (
                contract.methodology.model_dump(mode="json")
                if contract.methodology is not None
                else None
            ),
        },
        "x-privacy": privacy,
    }
    if contract.privacy.unit_key is not None and contract.privacy.max_contributions == 1:
        descriptor["primaryKey"] = [contract.privacy.unit_key]
    return descriptor


_COLUMN_TYPE = {"integer": "integer", "number": "number", "datetime": "datetime"}
_TOP_KEYS = {"$schema", "fields", "missingValues", "primaryKey", "x-sauti", "x-privacy"}
_FIELD_KEYS = {"name", "type", "title", "description", "constraints", "categories", "x-labels"}


def _column_from_field(
    field: dict[str, Any],
    roles: dict[str, ColumnRole],
    hashed: set[str],
    bounds: dict[str, dict[str, Any]],
    not_collected: set[str],
) -> Column:
    unknown = set(field) - _FIELD_KEYS
    name = str(field.get("name", ""))
    if unknown:
        raise ValueError(f"field {name!r} has unknown properties: {', '.join(sorted(unknown))}")
    constraints = dict(field.get("constraints") or {})
    enum = constraints.get("enum")
    labels: dict[str, dict[str, str]] = field.get("x-labels") or {}
    categories = {str(c["value"]): str(c["label"]) for c in field.get("categories") or ()}
    levels: tuple[Level, ...] = ()
    if enum is not None:
        levels = tuple(
            Level(
                code=str(code),
                labels=labels[str(code)]
                if str(code) in labels
                else ({"en": categories[str(code)]} if str(code) in categories else {}),
            )
            for code in enum
        )
    ftype = str(field.get("type", "string"))
    ctype: ColumnType = "categorical" if levels else _COLUMN_TYPE.get(ftype, "string")  # type: ignore[assignment]
    return Column(
        name=name,
        type=ctype,
        role=roles.get(name, "other"),
        title=field.get("title"),
        description=field.get("description"),
        levels=levels,
        lower=constraints.get("minimum"),
        upper=constraints.get("maximum"),
        nullable=not constraints.get("required", False),
        treatment="hash" if name in hashed else "drop",
        bounds_policy=bounds.get(name, {}).get("policy", "refuse"),
        bounds_rho=bounds.get(name, {}).get("rho"),
        collected=name not in not_collected,
    )


def _from_table_schema(cls: type[DatasetContract], descriptor: dict[str, Any]) -> DatasetContract:
    unknown = {k for k in descriptor if k not in _TOP_KEYS}
    if unknown:
        raise ValueError(f"unknown top-level properties: {', '.join(sorted(unknown))}")
    meta = dict(descriptor.get("x-sauti") or {})
    privacy = dict(descriptor.get("x-privacy") or {})
    roles: dict[str, ColumnRole] = {}
    hashed: set[str] = set()
    for item in privacy.get("identifiers", ()):
        roles[str(item["name"])] = "identifier"
        if item.get("treatment") == "hash":
            hashed.add(str(item["name"]))
    lists: tuple[tuple[str, ColumnRole], ...] = (
        ("free_text", "free_text"),
        ("dimensions", "dimension"),
        ("measures", "measure"),
        ("other", "other"),
    )
    for key, role in lists:
        for name in privacy.get(key, ()):
            if str(name) in roles:
                raise ValueError(f"column {name!r} is listed under two privacy roles")
            roles[str(name)] = role
    unit = privacy.get("unit_key")
    if unit is not None:
        if str(unit) in roles:
            raise ValueError(f"unit key {unit!r} is also listed under another privacy role")
        roles[str(unit)] = "unit_key"
    fields = descriptor.get("fields")
    if not isinstance(fields, list) or not fields:
        raise ValueError("a table schema needs a non-empty list of fields")
    names = {str(f.get("name")) for f in fields if isinstance(f, dict)}
    stray = sorted(set(roles) - names)
    if stray:
        raise ValueError(f"x-privacy names columns that are not fields: {', '.join(stray)}")
    bounds: dict[str, dict[str, Any]] = {
        str(name): bound
        for name, bound in dict(privacy.get("bounds") or {}).items()
        if isinstance(bound, dict)
    }
    not_collected = {str(n) for n in privacy.get("not_collected") or ()}
    stray = sorted(not_collected - names)
    if stray:
        raise ValueError(f"x-privacy.not_collected names unknown columns: {', '.join(stray)}")
    columns = tuple(_column_from_field(f, roles, hashed, bounds, not_collected) for f in fields)
    weight = privacy.get("weight") or {}
    methodology = meta.get("methodology")
    return cls(
        name=meta.get("name", ""),
        version=meta.get("version", 1),
        title=meta.get("title", ""),
        description=meta.get("description", ""),
        language=meta.get("language", "en"),
        columns=columns,
        privacy=PrivacyUnit(
            unit_key=unit,
            max_contributions=privacy.get("max_contributions", 1),
            weight_column=weight.get("column"),
            weight_upper=weight.get("upper"),
        ),
        methodology=Methodology.model_validate(methodology) if methodology else None,
    )
