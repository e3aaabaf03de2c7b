"""A query spec checked against the nodes' public contracts, before anything is sent (pure).

The agreement says which columns may be asked about; the contracts say what those columns
hold: their type, levels and bounds. A level no node's contract knows (`Yes` for `yes`)
would be refused by every node: the hub stops it here, naming the value and the levels
that exist (contracts are public). Where nodes' contracts differ, `differences` says how,
so the analyst learns it before the query runs.
"""

from collections.abc import Mapping
from dataclasses import dataclass

from contracts.agreement_rules import HUB_DIMS
from contracts.v1 import Column, DatasetContract, QuerySpec
from hub.queries.exceptions import ContractViolation

# Measures of a numeric column, and the one measure of a categorical column's level.
NUMERIC_MEASURES = ("sum", "mean", "quantile", "histogram")


def _columns(contracts: Mapping[str, DatasetContract], name: str) -> list[Column]:
    return [c for contract in contracts.values() if (c := contract.column(name)) is not None]


def _known_levels(columns: list[Column]) -> tuple[str, ...]:
    """Every level any node knows, in the first contract's order then the others'."""
    seen: dict[str, None] = {}
    for column in columns:
        for code in column.level_codes:
            seen.setdefault(code, None)
    return tuple(seen)


def check_levels(*, spec: QuerySpec, contracts: Mapping[str, DatasetContract]) -> None:
    """Refuse what no node could answer: an unknown column, a level unknown to every node,
    a measure that does not fit the column's type. Nothing to check against: no refusal."""
    if not contracts:
        return
    if spec.column is not None:
        columns = _columns(contracts, spec.column)
        if not columns:
            raise ContractViolation(
                f"no node's contract has a column {spec.column!r}",
                code="unknown_column",
                field="column",
                value=spec.column,
            )
        numeric = any(c.type in ("integer", "number") for c in columns)
        if spec.measure in NUMERIC_MEASURES and not numeric:
            raise ContractViolation(
                f"column {spec.column!r} is not numeric: a {spec.measure} needs a number",
                code="column_not_numeric",
                field="column",
                value=spec.column,
            )
        if spec.measure == "share" and spec.value is not None:
            allowed = _known_levels(columns)
            if allowed and spec.value not in allowed:
                raise ContractViolation(
                    f"{spec.value!r} is not a level of {spec.column!r}"
                    f" (levels: {', '.join(allowed)})",
                    code="unknown_level",
                    field="value",
                    value=spec.value,
                    allowed=allowed,
                )
    for dim in spec.group_by:
        if dim not in HUB_DIMS and not _columns(contracts, dim):
            raise ContractViolation(
                f"no node's contract has a column {dim!r}",
                code="unknown_column",
                field="group_by",
                value=dim,
            )
    for number, flt in enumerate(spec.filters, start=1):
        if flt.column in HUB_DIMS:
            continue
        columns = _columns(contracts, flt.column)
        if not columns:
            raise ContractViolation(
                f"no node's contract has a column {flt.column!r}",
                code="unknown_column",
                field=f"filter_column_{number}",
                value=flt.column,
            )
        allowed = _known_levels(columns)
        if not allowed:
            continue  # not categorical anywhere: the nodes refuse the filter themselves
        for level in flt.levels:
            if level not in allowed:
                raise ContractViolation(
                    f"{level!r} is not a level of {flt.column!r} (levels: {', '.join(allowed)})",
                    code="unknown_level",
                    field=f"filter_levels_{number}",
                    value=level,
                    allowed=allowed,
                )


@dataclass(frozen=True)
class Difference:
    """How one column differs between nodes' contracts: `kind` is levels, bounds, type or
    missing; `by_node` says what each node has (levels joined, bounds as low–high)."""

    column: str
    kind: str
    by_node: tuple[tuple[str, str], ...]


def differences(
    contracts: Mapping[str, DatasetContract], columns: tuple[str, ...]
) -> list[Difference]:
    """Columns of `columns` whose levels, bounds or type differ between nodes, or that some
    nodes lack. One node (or none): nothing to compare."""
    if len(contracts) < 2:
        return []
    out: list[Difference] = []
    for name in columns:
        if name in HUB_DIMS:
            continue
        found = {node: contract.column(name) for node, contract in sorted(contracts.items())}
        have = {node: c for node, c in found.items() if c is not None}
        if not have:
            continue
        if len(have) < len(found):
            out.append(
                Difference(
                    name,
                    "missing",
                    tuple((node, "yes" if c is not None else "no") for node, c in found.items()),
                )
            )
            continue
        if len({c.type for c in have.values()}) > 1:
            out.append(Difference(name, "type", tuple((n, c.type) for n, c in have.items())))
        elif len({c.level_codes for c in have.values()}) > 1:
            out.append(
                Difference(
                    name,
                    "levels",
                    tuple((n, ", ".join(c.level_codes)) for n, c in have.items()),
                )
            )
        elif len({(c.lower, c.upper) for c in have.values()}) > 1:
            out.append(
                Difference(
                    name,
                    "bounds",
                    tuple(
                        (
                            n,
                            f"{c.lower:g}–{c.upper:g}"
                            if c.lower is not None and c.upper is not None
                            else "—",
                        )
                        for n, c in have.items()
                    ),
                )
            )
    return out
