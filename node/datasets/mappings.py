"""A node's exports mapped onto a contract drafted from a shared codebook: check and apply.

The mapping (`ImportMapping`) renames the export's columns to the contract's and recodes its
own codes onto the contract's levels, before the import validates anything. Applying it is
row-wise, so the contribution bound the import enforces is unchanged. A value the mapping
does not name passes unchanged: one the contract lacks is then refused by validation
(`unknown_level`, rows named), never added as a level or silently dropped.
"""

import polars as pl

from contracts.v1 import DatasetContract
from node.datasets.schemas import ImportMapping
from node.datasets.tables import Table, names


def problems(mapping: ImportMapping, contract: DatasetContract) -> list[str]:
    """Why `mapping` does not fit `contract`; each names a contract column, never a value."""
    found = []
    if (mapping.dataset, mapping.contract_version) != (contract.name, contract.version):
        found.append(
            f"the mapping is for {mapping.dataset} v{mapping.contract_version}, not"
            f" {contract.name} v{contract.version}"
        )
    sources: dict[str, str] = {}
    for name, entry in mapping.columns.items():
        column = contract.column(name)
        if column is None:
            found.append(f"column {name}: not a column of the contract")
            continue
        if not column.collected:
            found.append(f"column {name}: the contract marks it not collected")
        if entry.column in sources:
            found.append(f"columns {sources[entry.column]} and {name} read the same export column")
        sources[entry.column] = name
        if entry.levels and column.type != "categorical":
            found.append(f"column {name}: only categorical columns are recoded")
            continue
        wrong = sum(
            1 for v in entry.levels.values() if v is not None and v not in column.level_codes
        )
        if wrong:
            found.append(f"column {name}: {wrong} recodes name a level the contract does not have")
    return found


def apply(table: Table, mapping: ImportMapping) -> Table:
    """`table` with the export's columns renamed to the contract's and its codes recoded."""
    present = names(table)
    renames = {
        entry.column: name
        for name, entry in mapping.columns.items()
        if entry.column in present and entry.column != name
    }
    # A file column that already has a contract column's name, when another column of the
    # file is mapped onto that name, steps aside: the contract reads the mapped one.
    aside = [name for name in renames.values() if name in present and name not in renames]
    frame = table.frame.drop(aside).rename(renames)
    recoded = []
    for name, entry in mapping.columns.items():
        if not entry.levels or (entry.column not in present and name not in present):
            continue
        value = pl.col(name).str.strip_chars()
        pairs = {v: level for v, level in entry.levels.items() if level is not None}
        missing = [v for v, level in entry.levels.items() if level is None]
        expr = value.replace(list(pairs), list(pairs.values())) if pairs else value
        if missing:
            expr = pl.when(value.is_in(missing)).then(None).otherwise(expr)
        recoded.append(expr.alias(name))
    if recoded:
        frame = frame.with_columns(recoded)
    return Table(
        frame=frame,
        source=table.source,
        issues=list(table.issues),
        derived=list(table.derived),
        option_columns={
            renames.get(c, c): what for c, what in table.option_columns.items() if c not in aside
        },
    )
