"""Propose a mapping from column names, titles, level codes and labels (any language).

Plain matching, no learning: text is normalised (Unicode NFKC, case-folded, runs of
non-word characters to `_`) and compared with the module's names, titles, labels and
synonyms tables. The steward reviews and edits the draft; `validate` says what is left.
"""

import re
import unicodedata
from collections.abc import Iterable, Sequence

from contracts.v1 import Column, DatasetContract, Module, ModuleVariable
from contracts.v1.harmonisation import ModuleLevel
from node.harmonisation.rules import NUMERIC, WG_DOMAINS, inputs
from node.harmonisation.schemas import Derive, Mapping, NotCollected, Recode, Rename, Rescale, Rule

WG_DOMAIN_NAMES = ("seeing", "hearing", "walking", "cognition", "self_care", "communication")
# Hints that a numeric age-like column holds a year of birth rather than an age.
_BIRTH_WORDS = ("birth", "year", "yob", "janma", "mwaka", "kuzaliwa", "barsa", "sal", "জন্ম")
_MAX_AGE = 150


def normalise(text: str) -> str:
    folded = unicodedata.normalize("NFKC", text).casefold().strip()
    return re.sub(r"[\W_]+", "_", folded).strip("_")


def _keys(texts: Iterable[str | None]) -> set[str]:
    return {normalise(t) for t in texts if t} - {""}


def _variable_keys(variable: ModuleVariable) -> set[str]:
    return _keys((variable.name, variable.title, *variable.synonyms))


def _column_score(column: Column, keys: set[str]) -> int:
    names = _keys((column.name, column.title))
    if names & keys:
        return 2
    tokens = {t for n in names for t in n.split("_")}
    return 1 if tokens & keys else 0


def _best_column(
    columns: Sequence[Column], keys: set[str], used: set[str], *, numeric: bool | None = None
) -> Column | None:
    best: tuple[int, Column] | None = None
    for column in columns:
        if column.name in used or not column.queryable:
            continue
        if numeric is not None and (column.type in NUMERIC) != numeric:
            continue
        score = _column_score(column, keys)
        if score and (best is None or score > best[0]):
            best = (score, column)
    return best[1] if best else None


def _level_match(local_keys: set[str], levels: Sequence[ModuleLevel]) -> str | None:
    for level in levels:
        if local_keys & _keys((level.code, *level.labels.values(), *level.synonyms)):
            return level.code
    return None


def _recode(column: Column, levels: Sequence[ModuleLevel]) -> dict[str, str]:
    out = {}
    for local in column.levels:
        target = _level_match(_keys((local.code, *local.labels.values())), levels)
        if target is not None:
            out[local.code] = target
    return out


def _categorical_rule(variable: ModuleVariable, column: Column) -> Rule | None:
    if column.type != "categorical":
        return None
    if set(column.level_codes) <= set(variable.level_codes):
        return Rename(rule="rename", column=column.name)
    levels = _recode(column, variable.levels)
    return Recode(rule="recode", column=column.name, levels=levels) if levels else None


def _age_rule(variable: ModuleVariable, column: Column, reference_year: int) -> Rule:
    words = normalise(f"{column.name} {column.title or ''}")
    birth = (column.upper is not None and column.upper > _MAX_AGE) or any(
        w in words for w in _BIRTH_WORDS
    )
    if birth:
        return Derive(
            rule="derive",
            method="age_band_from_birth_year",
            inputs=(column.name,),
            reference_year=reference_year,
        )
    return Derive(rule="derive", method="age_band_from_age", inputs=(column.name,))


def _numeric_rule(variable: ModuleVariable, column: Column) -> Rule:
    same = (column.lower, column.upper) == (variable.lower, variable.upper)
    if column.lower is None or column.upper is None or same or column.lower >= column.upper:
        return Rename(rule="rename", column=column.name)
    return Rescale(rule="rescale", column=column.name, source_range=(column.lower, column.upper))


def _wg_rule(
    contract: DatasetContract, domains: Sequence[ModuleVariable], used: set[str]
) -> Rule | None:
    """Six local domain columns (matched by the WG module's synonyms) and their answers."""
    chosen: list[Column] = []
    taken = set(used)
    for domain in domains:
        column = _best_column(contract.columns, _variable_keys(domain), taken, numeric=False)
        if column is None:
            return None
        chosen.append(column)
        taken.add(column.name)
    levels: dict[str, str] = {}
    for column in chosen:
        levels.update(_recode(column, domains[0].levels))
    used.update(c.name for c in chosen)
    return Derive(
        rule="derive",
        method="wg_identifier",
        inputs=tuple(c.name for c in chosen),
        levels=levels,
    )


def draft(
    *,
    module: Module,
    contract: DatasetContract,
    wg_module: Module | None,
    reference_year: int,
) -> Mapping:
    """A proposed mapping of every mappable variable (not_collected where nothing matched).

    `wg_module` gives the WG-SS domain synonyms for variables derived by `wg_identifier`
    (the module itself when it is the WG-SS module).
    """
    domains: list[ModuleVariable] = []
    source = module if module.variable("seeing") is not None else wg_module
    if source is not None:
        domains = [d for n in WG_DOMAIN_NAMES if (d := source.variable(n)) is not None]
    used: set[str] = set()
    variables: dict[str, Rule] = {}
    # Derived identifiers last, so the domains themselves claim their columns first.
    ordered = sorted(
        (v for v in module.variables if v.mappable), key=lambda v: v.derive is not None
    )
    for variable in ordered:
        rule: Rule | None = None
        if variable.derive == "wg_identifier":
            if len(domains) == WG_DOMAINS:
                rule = _wg_rule(contract, domains, used if module is not source else set())
        elif variable.type == "categorical":
            banded = all(lv.lower is not None for lv in variable.levels)
            keys = _variable_keys(variable)
            column = _best_column(contract.columns, keys, used, numeric=False)
            if column is not None:
                rule = _categorical_rule(variable, column)
            if rule is None and banded:
                column = _best_column(contract.columns, keys, used, numeric=True)
                if column is not None:
                    rule = _age_rule(variable, column, reference_year)
        elif variable.type in NUMERIC:
            column = _best_column(contract.columns, _variable_keys(variable), used, numeric=True)
            if column is not None:
                rule = _numeric_rule(variable, column)
        else:
            column = _best_column(contract.columns, _variable_keys(variable), used)
            if column is not None:
                rule = Rename(rule="rename", column=column.name)
        if rule is None:
            variables[variable.name] = NotCollected(rule="not_collected")
            continue
        used.update(inputs(rule))
        variables[variable.name] = rule
    return Mapping(
        module=module.name,
        version=module.version,
        dataset=contract.name,
        contract_version=contract.version,
        variables={v.name: variables[v.name] for v in module.variables if v.name in variables},
    )
