"""Rewrite revision 0001 from the current models: `python -m node.migrations.regenerate`.

Nothing has been released yet, so the first schema is whatever the models say when the
first release is cut. The output depends only on the models (fixed id, no date, tables in
dependency-then-name order, formatted with ruff), so re-running it on unchanged models
changes nothing. Once a release ships, 0001 is frozen and changes go in new revisions.
"""

import subprocess
import sys
from pathlib import Path

from alembic.autogenerate import produce_migrations, render_python_code
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine

from node.migrations.schema import HERE, metadata

APP = "node"
TARGET = HERE / "versions" / "0001_initial.py"

HEADER = '''"""The {app}'s first schema: `python -m {app}.migrations.regenerate` writes it.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
{upgrade}

def downgrade() -> None:
{downgrade}
'''


def render() -> str:
    """The text of revision 0001 for the current models."""
    engine = create_engine("sqlite://")
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "target_metadata": metadata()}
        )
        script = produce_migrations(context, metadata())
    upgrade_ops = script.upgrade_ops
    downgrade_ops = script.downgrade_ops
    assert upgrade_ops is not None
    assert downgrade_ops is not None
    options = {"alembic_module_prefix": "op.", "sqlalchemy_module_prefix": "sa."}
    return HEADER.format(
        app=APP,
        upgrade=_body(render_python_code(upgrade_ops, **options)),  # type: ignore[arg-type]
        downgrade=_body(render_python_code(downgrade_ops, **options)),  # type: ignore[arg-type]
    )


def _body(code: str) -> str:
    lines = [
        line for line in code.splitlines() if line.strip() and not line.strip().startswith("# ###")
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    TARGET.write_text(render())
    ruff = Path(sys.executable).parent / "ruff"
    if ruff.exists():
        # Our own dev tool on our own file: no untrusted input.
        subprocess.run([str(ruff), "format", "--quiet", str(TARGET)], check=True)  # noqa: S603
    print(f"wrote {TARGET}")


if __name__ == "__main__":
    main()
