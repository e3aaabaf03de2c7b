"""Names people read in place of codes: levels in the reader's language, countries by name."""

from collections.abc import Iterable, Mapping
from functools import cache

from babel import Locale

from contracts.v1 import DatasetContract, Level
from hub.publications.i18n import M49_TO_ALPHA2


def level_label(level: Level, lang: str) -> str:
    """The level's label in `lang`, else in English, else its code."""
    return level.labels.get(lang) or level.labels.get("en") or level.code


@cache
def country_name(m49: str, lang: str) -> str:
    """A UN M49 code as the country's name in `lang` (Babel's CLDR names); the code if the
    country is not one Babel knows by that code."""
    alpha2 = M49_TO_ALPHA2.get(m49)
    if alpha2 is None:
        return m49
    try:
        return str(Locale.parse(lang).territories.get(alpha2) or m49)
    except ValueError:
        return m49


def dim_labels(
    contracts: Iterable[DatasetContract], dims: Iterable[str], lang: str
) -> dict[str, dict[str, str]]:
    """For each dim, its levels' labels (code -> label) as the first contract naming each
    level gives them."""
    out: dict[str, dict[str, str]] = {}
    held = list(contracts)
    for dim in dims:
        labels: dict[str, str] = {}
        for contract in held:
            column = contract.column(dim)
            if column is None:
                continue
            for level in column.levels:
                labels.setdefault(level.code, level_label(level, lang))
        out[dim] = labels
    return out


def column_titles(contracts: Iterable[DatasetContract]) -> dict[str, str]:
    """Column name -> its title in the contracts (the name where none has a title)."""
    out: dict[str, str] = {}
    for contract in contracts:
        for column in contract.columns:
            if column.title:
                out.setdefault(column.name, column.title)
    return out


def key_label(
    dims: Iterable[str], key: Iterable[str], labels: Mapping[str, Mapping[str, str]], lang: str
) -> tuple[str, ...]:
    """A cell key in words: levels by label, countries by name."""
    out = []
    for dim, level in zip(dims, key, strict=False):
        if dim == "country":
            out.append(country_name(level, lang))
        else:
            out.append(labels.get(dim, {}).get(level, level))
    return tuple(out)
