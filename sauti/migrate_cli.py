"""`sauti hub migrate` and `sauti node migrate`: bring a database to this version's schema."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated

import typer

from sauti import hub_options
from sauti.cli_common import fail
from sauti.node_options import DEFAULT_HOME as NODE_HOME
from sauti.node_options import Home as NodeHome
from sauti.node_options import settings_for

if TYPE_CHECKING:
    from sqlalchemy import Engine

Status = Annotated[
    bool,
    typer.Option("--status", help="Only show the revision; exit 1 if an upgrade is due."),
]


def hub_migrate(
    home: hub_options.HomeFolder = hub_options.DEFAULT_HOME, status: Status = False
) -> None:
    """Upgrade the hub database to this version's schema (back it up first)."""
    from sqlalchemy.exc import OperationalError

    from hub.db import SCHEMA as hub_schema
    from hub.db import make_engine as hub_engine
    from hub.exceptions import HubError
    from hub.settings import HubSettings

    engine = hub_engine(HubSettings(home=home).effective_database_url)
    try:
        _run(engine, status=status, state=hub_schema.state, migrate=hub_schema.migrate)
    except HubError as exc:
        fail(f"{exc.code}: {exc.message}")
    except OperationalError:
        fail("cannot open the hub database (check the home folder and HUB_DATABASE_URL)")
    finally:
        engine.dispose()


def node_migrate(home: NodeHome = NODE_HOME, status: Status = False) -> None:
    """Upgrade the node database to this version's schema (back it up first)."""
    from sqlalchemy.exc import OperationalError

    from node.db import SCHEMA as node_schema
    from node.db import make_engine as node_engine
    from node.exceptions import NodeError

    engine = node_engine(settings_for(home).db_url)
    try:
        _run(engine, status=status, state=node_schema.state, migrate=node_schema.migrate)
    except NodeError as exc:
        fail(f"{exc.code}: {exc.message}")
    except OperationalError:
        fail("cannot open the node database (check the home folder and NODE_DATABASE_URL)")
    finally:
        engine.dispose()


def _run(
    engine: Engine,
    *,
    status: bool,
    state: Callable[[Engine], tuple[str | None, str]],
    migrate: Callable[[Engine], tuple[str | None, str]],
) -> None:
    if status:
        current, head = state(engine)
        typer.echo(f"database revision {current or 'none'}, this version {head}")
        if current != head:
            raise typer.Exit(1)
        return
    before, after = migrate(engine)
    if before == after:
        typer.echo(f"database already at revision {after}")
    else:
        typer.echo(f"database migrated from revision {before or 'none'} to {after}")
