"""`sauti node` sub-commands: thin wrappers over the node's services."""

import json
from pathlib import Path
from typing import Annotated

import typer

from sauti import (
    harmonisation_cli,
    migrate_cli,
    node_agreements_cli,
    node_backup_cli,
    node_datasets_cli,
    node_steward_cli,
    node_sync_cli,
)
from sauti.cli_common import data_free_logging, echo_json, fail
from sauti.node_options import DEFAULT_HOME, Home, HomeFolder, Json, settings_for

# Each command imports what it runs in its body: `sauti node ...` starts at once.
app = typer.Typer(no_args_is_help=True)
app.add_typer(node_agreements_cli.app, name="agreements")
token_app = typer.Typer(no_args_is_help=True, help="Steward API tokens (shown once).")
app.add_typer(token_app, name="token")
app.add_typer(node_steward_cli.app, name="steward")
app.registered_commands.extend(node_datasets_cli.app.registered_commands)
app.add_typer(node_datasets_cli.contract_app, name="contract")
app.registered_commands.extend(node_sync_cli.app.registered_commands)
app.command("migrate")(migrate_cli.node_migrate)
app.registered_commands.extend(node_backup_cli.app.registered_commands)
app.add_typer(harmonisation_cli.map_app, name="map")
app.add_typer(harmonisation_cli.modules_app, name="modules")


@app.command("init")
def init(
    name: Annotated[str, typer.Option("--name")],
    country: Annotated[str, typer.Option("--country", help="UN M49 code, e.g. 524")],
    home: HomeFolder = DEFAULT_HOME,
    node_id: Annotated[str | None, typer.Option("--node-id")] = None,
) -> None:
    """Create a node home: identity and Ed25519 key."""
    from node.exceptions import NodeError
    from node.home import init_home

    try:
        identity = init_home(home, name=name, country=country, node_id=node_id)
    except NodeError as exc:
        fail(exc.message)
    typer.echo(f"node {identity.node_id} created in {home} (kid {identity.kid})")


@app.command("pin-hub")
def pin_hub_command(
    hub_id: Annotated[str, typer.Option("--hub-id")],
    jwk_file: Annotated[Path, typer.Argument(help="The hub's public JWK (JSON).")],
    home: Home = DEFAULT_HOME,
    url: Annotated[
        str | None, typer.Option("--url", help="The hub's base URL, e.g. https://hub.example.org")
    ] = None,
) -> None:
    """Pin the hub whose requests and agreements this node honours."""
    from node.exceptions import NodeError
    from node.home import pin_hub

    try:
        pin_hub(home, hub_id=hub_id, public_jwk=json.loads(jwk_file.read_text()), url=url)
    except (NodeError, OSError, ValueError) as exc:
        fail(exc.message if isinstance(exc, NodeError) else "cannot read the hub JWK file")
    typer.echo(f"pinned hub {hub_id}")


@app.command("budget")
def budget_command(home: Home = DEFAULT_HOME, as_json: Json = False) -> None:
    """Privacy budget per agreement (zCDP rho)."""
    from contracts.budget import figure as rho
    from node.ledger import service as ledger

    lines = ledger.budget_report(home=home, settings=settings_for(home))
    if as_json:
        echo_json([line.model_dump(mode="json") for line in lines])
        return
    typer.echo(
        f"{'agreement':<24} {'ver':>3} {'budget':>10} {'spent':>10} {'left':>10} {'queries':>7}"
    )
    for ln in lines:
        typer.echo(
            f"{ln.agreement_id:<24} {ln.version:>3} {rho(ln.rho_budget):>10} "
            f"{rho(ln.rho_spent):>10} {rho(ln.rho_remaining):>10} {ln.queries:>7}"
        )


@app.command("serve")
def serve(
    home: Home = DEFAULT_HOME,
    host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port")] = 8701,
) -> None:
    """Serve the node's HTTP API and the steward's web pages (/steward/)."""
    import uvicorn

    from node.app import create_app
    from runtime.apps import settle_heap
    from runtime.http_server import BoundedHttpToolsProtocol

    application = create_app(settings_for(home))
    settle_heap()  # as `sauti hub serve`: start-up's objects out of the collector's walks
    # log_config=None: uvicorn keeps this configuration (its own prints tracebacks).
    # httptools (C) parses a query for less CPU than h11, with h11's bound on what it holds
    # of an unfinished head (runtime.http_server; docs/architecture.md, issue #25).
    with data_free_logging():
        uvicorn.run(
            application, host=host, port=port, log_config=None, http=BoundedHttpToolsProtocol
        )


@token_app.command("create")
def token_create(
    name: Annotated[str, typer.Option("--name", help="Who or what the token is for.")],
    home: Home = DEFAULT_HOME,
    expires_days: Annotated[
        float | None, typer.Option("--expires-days", min=0.001, help="Default 365.")
    ] = None,
) -> None:
    """Create a steward token for the node's admin API; it is shown only this once."""
    from node.auth import service as auth

    typer.echo(
        auth.create_token(
            database_url=settings_for(home).db_url, name=name, expires_in_days=expires_days
        )
    )


@token_app.command("revoke")
def token_revoke(token_id: int, home: Home = DEFAULT_HOME) -> None:
    """Revoke a steward token at once."""
    from node.auth import service as auth
    from node.exceptions import NodeError

    try:
        auth.revoke_token(database_url=settings_for(home).db_url, token_id=token_id)
    except NodeError as exc:
        fail(exc.message)
    typer.echo(f"steward token {token_id} revoked")
