"""Shared codebooks: the public source several partners draft one compatible contract from.

A partnership agrees on one codebook: a hub-signed harmonisation module (`lnob_core`,
`wg_ss`, `sdg_dims`) or one partner's published contract (its Sauti JSON, Table Schema or the
XLSForm it was drafted from). Each node drafts its contract from it (node.datasets.drafting)
and maps its own export onto it (`ImportMapping`): the same columns, levels, labels and
bounds at every node, whatever subset of levels each one's data hold.

Everything here is public by construction: it comes from the codebook, never from a node's
data. Matching a file's columns and values to the codebook compares normalised words (the
harmonisation drafting's `normalise`: Unicode NFKC, case-folded, non-word runs to `_`) of
names, titles, labels in every language and a module's synonyms tables.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from contracts.v1 import Column, DatasetContract, Level, Module
from contracts.v1.dataset import ColumnRole, ColumnType
from contracts.v1.harmonisation import ModuleVariable
from node.harmonisation.draft import normalise

_MODULE_TYPE: dict[str, ColumnType] = {
    "categorical": "categorical",
    "integer": "integer",
    "number": "number",
    "string": "string",
}
# A module's string variables (admin area) are documented but never grouped on across
# countries: kept, not queryable, as in the module view.
_MODULE_ROLE: dict[str, ColumnRole] = {
    "categorical": "dimension",
    "integer": "measure",
    "number": "measure",
    "string": "other",
}


@dataclass(frozen=True)
class SharedColumn:
    """One column of a shared codebook: its public definition (name, type, role, title, levels
    with every language's labels, bounds and policy, description) and other words naming it
    and its levels (a module's synonyms tables), for finding it in a node's file."""

    column: Column
    synonyms: tuple[str, ...] = ()
    level_synonyms: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    derived: str | None = None  # a module's derivation from several questions (wg_identifier)


@dataclass(frozen=True)
class SharedCodebook:
    """A codebook partners draft one contract from. `source` names it for the steward
    ("module lnob_core v1"); `version` is the contract version partners publish (an
    agreement pins one version for every node). The privacy unit is not in it: who one unit
    is (a respondent, a household) and how many rows it has are each node's own."""

    source: str
    title: str
    columns: tuple[SharedColumn, ...]
    version: int = 1
    name: str | None = None
    description: str = ""
    language: str = "en"
    weight_column: str | None = None
    weight_upper: float | None = None

    def column(self, name: str) -> SharedColumn | None:
        return next((c for c in self.columns if c.column.name == name), None)


def _variable_column(variable: ModuleVariable) -> Column:
    return Column(
        name=variable.name,
        type=_MODULE_TYPE[variable.type],
        role=_MODULE_ROLE[variable.type],
        title=variable.title,
        levels=tuple(Level(code=lv.code, labels=dict(lv.labels)) for lv in variable.levels),
        lower=variable.lower,
        upper=variable.upper,
        description=variable.definition,
    )


def from_module(module: Module) -> SharedCodebook:
    """A module as a codebook: its mappable variables (the hub answers `country`), with
    their levels, labels, bounds (values outside refused: they are definitions, e.g. a 1-5
    scale) and synonyms; a variable the module derives from several questions is marked."""
    return SharedCodebook(
        source=f"module {module.name} v{module.version}",
        title=module.title,
        description=module.description,
        columns=tuple(
            SharedColumn(
                column=_variable_column(v),
                synonyms=v.synonyms,
                level_synonyms={lv.code: lv.synonyms for lv in v.levels},
                derived=v.derive,
            )
            for v in module.variables
            if v.mappable
        ),
    )


def from_contract(contract: DatasetContract, *, source: str | None = None) -> SharedCodebook:
    """A partner's contract as a codebook: its columns as published, with what is the
    partner's own left behind: its unit key and methodology, whether it collects a column,
    and the cost of bounds it estimated from its data (public now: using them spends
    nothing here)."""
    return SharedCodebook(
        source=source or f"partner contract {contract.name} v{contract.version}",
        title=contract.title,
        name=contract.name,
        version=contract.version,
        description=contract.description,
        language=contract.language,
        weight_column=contract.privacy.weight_column,
        weight_upper=contract.privacy.weight_upper,
        columns=tuple(
            SharedColumn(column=c.model_copy(update={"collected": True, "bounds_rho": None}))
            for c in contract.columns
            if c.role != "unit_key"
        ),
    )


def words(texts: Iterable[str | None]) -> set[str]:
    """The normalised forms of names, titles, labels and synonyms (empty ones left out)."""
    return {normalise(t) for t in texts if t} - {""}


def column_words(item: SharedColumn) -> set[str]:
    return words((item.column.name, item.column.title, *item.synonyms))


def level_index(item: SharedColumn) -> dict[str, set[str]]:
    """Each word naming a level of the column (its code, labels, synonyms) -> the levels."""
    index: dict[str, set[str]] = {}
    for level in item.column.levels:
        synonyms = item.level_synonyms.get(level.code, ())
        for word in words((level.code, *level.labels.values(), *synonyms)):
            index.setdefault(word, set()).add(level.code)
    return index


def level_for(index: Mapping[str, set[str]], texts: Iterable[str | None]) -> str | None:
    """The one level these texts (a value and its own labels) name, or None (none, or more)."""
    found: set[str] = set()
    for word in words(texts):
        found |= index.get(word, set())
    return next(iter(found)) if len(found) == 1 else None
