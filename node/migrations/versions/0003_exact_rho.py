"""exact budgets: rho as decimals, NUMERIC on PostgreSQL and text on SQLite (issue #26).

Revision ID: 0003
Revises: 0002

Every stored rho becomes the shortest decimal of the double it was (what the hub signed),
converted here in Python: both databases' own casts round a double to 15 digits. A budget's
running total is then recomputed as the exact sum of its charges when it differs from them
only by float rounding; a total that differs by more holds charges from before per-charge
rows existed, and is kept as it was.
"""

from collections import defaultdict
from decimal import Decimal, localcontext
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None

# (table, key column, rho column)
_COLUMNS = (
    ("budgets", "agreement_id", "rho_spent"),
    ("releases", "query_id", "rho"),
    ("budget_charges", "id", "rho"),
)
# Float drift of a running total over many charges stays far below this.
_DRIFT = 1e-9


def _exact_type() -> sa.types.TypeEngine[Any]:
    if op.get_bind().dialect.name == "postgresql":
        return sa.Numeric()
    return sa.Text()


def _read(table: str, key: str, column: str) -> list[tuple[object, object]]:
    rows = op.get_bind().execute(sa.text(f"SELECT {key}, {column} FROM {table}"))  # noqa: S608
    return [(row[0], row[1]) for row in rows]


def _write(table: str, key: str, column: str, values: list[tuple[object, object]]) -> None:
    if values:
        op.get_bind().execute(
            sa.text(f"UPDATE {table} SET {column} = :value WHERE {key} = :key"),  # noqa: S608
            [{"key": k, "value": v} for k, v in values],
        )


def _decimal(value: object) -> Decimal:
    return Decimal(repr(value)) if isinstance(value, float) else Decimal(str(value))


def upgrade() -> None:
    exact = _exact_type()
    text_column = op.get_bind().dialect.name != "postgresql"
    saved = {table: _read(table, key, column) for table, key, column in _COLUMNS}
    charges: dict[str, list[Decimal]] = defaultdict(list)
    for agreement_id, rho in op.get_bind().execute(
        sa.text("SELECT agreement_id, rho FROM budget_charges")
    ):
        charges[agreement_id].append(_decimal(rho))
    for table, _key, column in _COLUMNS:
        with op.batch_alter_table(table) as batch:
            batch.alter_column(
                column, type_=exact, existing_type=sa.Float(), existing_nullable=False
            )

    with localcontext(prec=1000):
        for table, key, column in _COLUMNS:
            values: list[tuple[object, object]] = []
            for row_key, old in saved[table]:
                number = _decimal(old)
                if table == "budgets":
                    summed = sum(charges.get(str(row_key), []), Decimal(0))
                    drift = abs(float(number) - float(summed))
                    if drift <= _DRIFT * max(1.0, abs(float(number))):
                        number = summed
                values.append((row_key, str(number) if text_column else number))
            _write(table, key, column, values)


def downgrade() -> None:
    saved = {table: _read(table, key, column) for table, key, column in _COLUMNS}
    for table, _key, column in _COLUMNS:
        with op.batch_alter_table(table) as batch:
            batch.alter_column(
                column, type_=sa.Float(), existing_type=_exact_type(), existing_nullable=False
            )
    for table, key, column in _COLUMNS:
        _write(table, key, column, [(k, float(_decimal(v))) for k, v in saved[table]])
