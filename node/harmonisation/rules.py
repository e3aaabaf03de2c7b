"""Check a mapping against its module and dataset contract, and apply it to the data.

Applying is row-wise (one source row gives one module row), so the contribution bound the
import enforced still holds and the DP engine's sensitivity argument is unchanged. Levels
and bounds of the view come from the module, never from the data: a local value the
mapping does not cover becomes missing and lands in no cell.
"""

from collections.abc import Sequence

import polars as pl

from contracts.v1 import Column, DatasetContract, Module, ModuleVariable, PrivacyUnit
from contracts.v1.harmonisation import module_contract
from node.harmonisation.schemas import Derive, Mapping, Recode, Rename, Rescale, Rule

WG_LEVELS = ("no_difficulty", "some_difficulty", "a_lot_of_difficulty", "cannot_do_at_all")
# The WG-SS identifier's cut-off: at least one domain at "a lot" or worse.
WG_DISABLED = ("a_lot_of_difficulty", "cannot_do_at_all")
WG_DOMAINS = 6
WEIGHT = "_sauti_weight"
NUMERIC = ("integer", "number")


def inputs(rule: Rule) -> tuple[str, ...]:
    """The local columns a rule reads."""
    if isinstance(rule, Rename | Recode | Rescale):
        return (rule.column,)
    if isinstance(rule, Derive):
        return rule.inputs
    return ()


def check(mapping: Mapping, *, module: Module, contract: DatasetContract) -> list[str]:
    """Every problem of the mapping, each naming its variable (no data is read)."""
    return [
        p for problems in problems_by_variable(mapping, module, contract).values() for p in problems
    ]


def problems_by_variable(
    mapping: Mapping, module: Module, contract: DatasetContract
) -> dict[str, list[str]]:
    """Problems keyed by the variable they concern ("" for the mapping as a whole)."""
    found: dict[str, list[str]] = {}
    if (mapping.module, mapping.version) != (module.name, module.version):
        found[""] = [f"the mapping is for {mapping.module} v{mapping.version}, not this module"]
    if (mapping.dataset, mapping.contract_version) != (contract.name, contract.version):
        found.setdefault("", []).append("the mapping names another dataset or contract version")
    for name, rule in mapping.variables.items():
        variable = module.variable(name)
        if variable is None:
            found[name] = [f"variable {name}: not a variable of module {module.name}"]
        elif variable.hub_dim:
            if rule.rule != "not_collected":
                found[name] = [f"variable {name}: answered by the hub, never mapped"]
        elif problems := _check_rule(name, rule, variable, contract):
            found[name] = problems
    return found


def _check_rule(
    name: str, rule: Rule, variable: ModuleVariable, contract: DatasetContract
) -> list[str]:
    missing = [c for c in inputs(rule) if contract.column(c) is None]
    if missing:
        kind = "derived variable" if isinstance(rule, Derive) else "variable"
        return [
            f"{kind} {name}: input column(s) not in dataset {contract.name}: {', '.join(missing)}"
        ]
    columns = [contract.column(c) for c in inputs(rule)]
    for column in columns:
        assert column is not None
        if not column.queryable:
            return [f"variable {name}: column {column.name} is a {column.role} and is never mapped"]
    if isinstance(rule, Rename):
        return _check_rename(name, variable, columns[0])
    if isinstance(rule, Recode):
        return _check_recode(name, rule, variable, columns[0])
    if isinstance(rule, Rescale):
        if variable.type not in NUMERIC or columns[0] is None or columns[0].type not in NUMERIC:
            return [f"variable {name}: rescale needs a numeric variable and a numeric column"]
        low, high = rule.source_range
        return [] if low < high else [f"variable {name}: source_range must rise"]
    if isinstance(rule, Derive):
        return _check_derive(name, rule, variable, columns)
    return []


def _check_rename(name: str, variable: ModuleVariable, column: Column | None) -> list[str]:
    assert column is not None
    if variable.type == "categorical":
        if column.type != "categorical":
            return [f"variable {name}: column {column.name} is not categorical; use recode"]
        extra = [c for c in column.level_codes if c not in variable.level_codes]
        if extra:
            return [
                f"variable {name}: column {column.name} has levels the module does not have;"
                " use recode"
            ]
    elif variable.type in NUMERIC and column.type not in NUMERIC:
        return [f"variable {name}: column {column.name} is not numeric"]
    return []


def _check_recode(
    name: str, rule: Recode, variable: ModuleVariable, column: Column | None
) -> list[str]:
    assert column is not None
    problems = []
    if variable.type != "categorical":
        return [f"variable {name}: only categorical variables are recoded"]
    for target in sorted(set(rule.levels.values())):
        if target not in variable.level_codes:
            problems.append(f"variable {name}: level {target!r} does not exist in the module")
    if column.type == "categorical":
        unknown = [k for k in rule.levels if k not in column.level_codes]
        if unknown:
            problems.append(
                f"variable {name}: recodes level(s) column {column.name} does not have:"
                f" {', '.join(unknown)}"
            )
    return problems


def _check_derive(
    name: str, rule: Derive, variable: ModuleVariable, columns: Sequence[Column | None]
) -> list[str]:
    if rule.method == "wg_identifier":
        if set(variable.level_codes) != {"yes", "no"}:
            return [f"derived variable {name}: wg_identifier gives yes/no; the module differs"]
        if len(rule.inputs) != WG_DOMAINS:
            return [f"derived variable {name}: wg_identifier needs the six WG-SS domain columns"]
        wrong = sorted({t for t in rule.levels.values() if t not in WG_LEVELS})
        if not rule.levels or wrong:
            return [
                f"derived variable {name}: levels must recode answers to the four WG levels"
                f" ({', '.join(WG_LEVELS)})"
            ]
        return []
    if variable.type != "categorical" or any(lv.lower is None for lv in variable.levels):
        return [f"derived variable {name}: {rule.method} needs a module variable of age bands"]
    if len(rule.inputs) != 1 or columns[0] is None or columns[0].type not in NUMERIC:
        return [f"derived variable {name}: {rule.method} needs one numeric input column"]
    if rule.method == "age_band_from_birth_year" and rule.reference_year is None:
        return [f"derived variable {name}: age_band_from_birth_year needs reference_year"]
    return []


def expression(rule: Rule, variable: ModuleVariable) -> pl.Expr:
    """The polars expression giving the module variable from the local columns."""
    if isinstance(rule, Rename):
        return _typed(pl.col(rule.column), variable)
    if isinstance(rule, Recode):
        return _recoded(rule.column, rule.levels)
    if isinstance(rule, Rescale):
        low, high = rule.source_range
        assert variable.lower is not None
        assert variable.upper is not None
        scaled = (pl.col(rule.column).cast(pl.Float64) - low) / (high - low) * (
            variable.upper - variable.lower
        ) + variable.lower
        return _typed(scaled, variable)
    if isinstance(rule, Derive):
        if rule.method == "wg_identifier":
            return _wg_identifier(rule)
        age = pl.col(rule.inputs[0]).cast(pl.Float64)
        if rule.method == "age_band_from_birth_year":
            assert rule.reference_year is not None
            age = rule.reference_year - age
        return _banded(age.floor(), variable)
    return pl.lit(None, dtype=pl.String)


def _typed(expr: pl.Expr, variable: ModuleVariable) -> pl.Expr:
    if variable.type == "integer":
        return expr.cast(pl.Float64).round().cast(pl.Int64)
    if variable.type == "number":
        return expr.cast(pl.Float64)
    return expr.cast(pl.String)


def _recoded(column: str, levels: dict[str, str]) -> pl.Expr:
    return (
        pl.col(column)
        .cast(pl.String)
        .replace_strict(list(levels), list(levels.values()), default=None, return_dtype=pl.String)
    )


def _banded(age: pl.Expr, variable: ModuleVariable) -> pl.Expr:
    expr: pl.Expr = pl.lit(None, dtype=pl.String)
    for level in reversed(variable.levels):
        assert level.lower is not None
        assert level.upper is not None
        expr = (
            pl.when(age.is_between(level.lower, level.upper))
            .then(pl.lit(level.code))
            .otherwise(expr)
        )
    return expr


def _wg_identifier(rule: Derive) -> pl.Expr:
    domains = [_recoded(c, rule.levels) for c in rule.inputs]
    disabled = pl.any_horizontal([d.is_in(list(WG_DISABLED)).fill_null(False) for d in domains])
    answered = pl.all_horizontal([d.is_not_null() for d in domains])
    return (
        pl.when(disabled)
        .then(pl.lit("yes"))
        .when(answered)
        .then(pl.lit("no"))
        .otherwise(pl.lit(None, dtype=pl.String))
    )


def collected(mapping: Mapping, module: Module) -> dict[str, Rule]:
    """The module variables the mapping answers, with their rules (module order)."""
    return {
        v.name: mapping.variables[v.name]
        for v in module.variables
        if v.mappable and mapping.status(v.name) != "not_collected"
    }


def view_contract(
    mapping: Mapping, *, module: Module, contract: DatasetContract
) -> DatasetContract:
    """The module view's contract: the collected module variables (levels and bounds from
    the module) plus the source's weight under a reserved name."""
    source = contract.privacy
    # The unit key is not carried: import already bounded each unit's rows, and the engine
    # needs only that bound (max_contributions).
    privacy = PrivacyUnit(
        unit_key=None,
        max_contributions=source.max_contributions,
        weight_column=WEIGHT if source.weight_column is not None else None,
        weight_upper=source.weight_upper,
    )
    return module_contract(
        module,
        privacy=privacy,
        unit_key=privacy.unit_key,
        collected=set(collected(mapping, module)),
    )


def view_frame(
    mapping: Mapping, *, module: Module, contract: DatasetContract, data: pl.LazyFrame
) -> pl.LazyFrame:
    """The module view of `data`, matching `view_contract`. Call `check` first."""
    selected = []
    for name, rule in collected(mapping, module).items():
        variable = module.variable(name)
        assert variable is not None
        selected.append(expression(rule, variable).alias(name))
    source = contract.privacy
    if source.weight_column is not None:
        selected.append(pl.col(source.weight_column).cast(pl.Float64).alias(WEIGHT))
    if not selected:  # nothing collected: the rows still count, no column is readable
        selected.append(pl.int_range(pl.len()).alias("_sauti_row"))
    return data.select(selected)
