"""`sauti hub` sub-commands: thin wrappers over the hub's services."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from sauti import harmonisation_cli, hub_agreements_cli, hub_auth_cli, hub_nodes_cli, migrate_cli
from sauti.cli_common import data_free_logging, processes_option, read_model
from sauti.hub_options import DEFAULT_HOME, Home, HomeFolder

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from hub.settings import HubSettings

app = typer.Typer(no_args_is_help=True)
token_app = hub_auth_cli.token_app
nodes_app = typer.Typer(no_args_is_help=True, help="The node registry.")
agreements_app = typer.Typer(no_args_is_help=True, help="Agreements (MoUs).")
app.add_typer(token_app, name="token")
app.add_typer(hub_auth_cli.org_app, name="org")
app.add_typer(hub_auth_cli.user_app, name="user")
app.add_typer(nodes_app, name="nodes")
app.add_typer(agreements_app, name="agreements")
agreements_app.registered_commands.extend(hub_agreements_cli.app.registered_commands)
app.registered_commands.extend(hub_nodes_cli.app.registered_commands)
app.add_typer(hub_nodes_cli.enroll_token_app, name="enroll-token")
nodes_app.registered_commands.extend(hub_nodes_cli.nodes_app.registered_commands)
app.command("migrate")(migrate_cli.hub_migrate)
app.add_typer(harmonisation_cli.hub_modules_app, name="modules")
# How long an API process may take to start, and to answer its supervisor's health check.
HEALTHCHECK_SECONDS = 60


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(1)


@contextmanager
def _session(home: Path) -> Iterator[Session]:
    from hub.db import init_db, make_engine
    from hub.exceptions import HubError
    from hub.settings import HubSettings

    settings = HubSettings(home=home)
    engine = make_engine(settings.effective_database_url)
    try:
        with init_db(engine)() as session:
            yield session
    except HubError as exc:
        raise _fail(f"{exc.code}: {exc.message}") from exc
    finally:
        engine.dispose()


@app.command("init")
def init(
    hub_id: Annotated[str, typer.Option("--hub-id")] = "lnob-hub", home: HomeFolder = DEFAULT_HOME
) -> None:
    """Create the hub's identity, key and database."""
    from hub.home import init_home

    identity = init_home(home, hub_id=hub_id)
    with _session(home):
        pass
    typer.echo(f"hub {identity.hub_id} (kid {identity.kid}) in {home}")


@app.command("rotate-key")
def rotate_key(home: Home = DEFAULT_HOME) -> None:
    """Replace the hub's signing key and announce it to the nodes (restart the hub after)."""
    from hub.audit import service as hub_audit
    from hub.exceptions import HubError
    from hub.home import load_identity
    from hub.home import rotate_key as rotate_home_key
    from hub.settings import HubSettings

    settings = HubSettings(home=home)
    try:
        old = load_identity(home)
        rotate_home_key(home, overlap_seconds=settings.key_overlap_seconds)
    except HubError as exc:
        raise _fail(f"{exc.code}: {exc.message}") from exc
    new = load_identity(home)
    until = new.previous_keys[0].overlap_until
    with _session(home) as session:
        hub_audit.append(
            session=session,
            actor="cli",
            action="hub.key_rotated",
            object=f"hub:{new.hub_id}",
            details={"old_kid": old.kid, "new_kid": new.kid, "overlap_until": until},
        )
        session.commit()
    typer.echo(
        f"rotated hub key {old.kid} -> {new.kid}; nodes learn it on their next contact and "
        f"take the old key until {until}. Restart `sauti hub serve` and workers now."
    )


@app.command("serve")
def serve(
    host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port")] = 8400,
    processes: Annotated[
        int | None,
        processes_option(
            "API processes on this one port (default HUB_API_PROCESSES, 1); more than "
            "one needs PostgreSQL.",
        ),
    ] = None,
    home: Home = DEFAULT_HOME,
) -> None:
    """Serve the hub API with uvicorn (one process, or `--processes N` on one port)."""
    import uvicorn

    from hub.app import create_app
    from hub.exceptions import HubError
    from hub.settings import HubSettings
    from runtime.apps import settle_heap
    from runtime.http_server import BoundedHttpToolsProtocol

    settings = HubSettings(home=home)
    count = processes or settings.api_processes
    if count > 1:
        _serve_processes(settings, host=host, port=port, processes=count)
        return
    try:
        application = create_app(settings)
    except HubError as exc:
        raise _fail(f"{exc.code}: {exc.message}") from exc
    settle_heap()
    # log_config=None: uvicorn keeps this configuration (its own prints tracebacks).
    # httptools with h11's bound on an unfinished head (uvicorn's own httptools server has
    # none), as `sauti node serve`: `runtime.http_server`.
    with data_free_logging():
        uvicorn.run(
            application, host=host, port=port, log_config=None, http=BoundedHttpToolsProtocol
        )


def _serve_processes(settings: HubSettings, *, host: str, port: int, processes: int) -> None:
    """uvicorn's supervisor: one socket, `processes` spawned children each building the app
    from the environment (`hub.app:app_from_environment`), a dead child replaced."""
    import uvicorn

    from hub.exceptions import HubError
    from hub.home import load_identity, load_key
    from runtime import edge
    from runtime.http_server import BoundedHttpToolsProtocol

    if settings.effective_database_url.startswith("sqlite"):
        raise _fail(
            "sqlite_single_process: several API processes need HUB_DATABASE_URL "
            "(PostgreSQL); SQLite has one writer"
        )
    try:
        load_identity(settings.home)
        load_key(settings.home)
    except HubError as exc:
        raise _fail(f"{exc.code}: {exc.message}") from exc
    # The children read their settings as this process did: the home is the one thing given
    # on the command line, so it goes to them through the environment.
    os.environ["HUB_HOME"] = str(settings.home.resolve())
    with data_free_logging():
        uvicorn.run(
            "hub.app:app_from_environment",
            factory=True,
            host=host,
            port=port,
            workers=processes,
            # Bounded httptools: see `serve` above (a module-level class: spawned children
            # unpickle it by name).
            http=BoundedHttpToolsProtocol,
            # A spawned child imports the whole command before it answers its first health
            # check: seconds on a loaded machine, beyond uvicorn's 5 s default (it would be
            # killed and started again forever).
            timeout_worker_healthcheck=HEALTHCHECK_SECONDS,
            # Applied in each child (spawned: nothing configured here is inherited).
            log_config=edge.log_config(),
        )


@nodes_app.command("add")
def nodes_add(url: Annotated[str, typer.Option("--url")], home: Home = DEFAULT_HOME) -> None:
    """Fetch a node's /v1/info and pin its key (trust on first use)."""
    import httpx
    from pydantic import ValidationError

    from contracts.v1 import NodeInfo
    from hub.nodes import service as federation

    try:
        response = httpx.get(f"{url.rstrip('/')}/v1/info", timeout=30)
        response.raise_for_status()
        info = NodeInfo.model_validate_json(response.content)
    except (httpx.HTTPError, ValidationError) as exc:
        raise _fail(f"node_info_unavailable: cannot read {url}/v1/info") from exc
    with _session(home) as session:
        node = federation.register_node(
            session=session,
            node_id=info.node_id,
            name=info.name,
            country=info.country,
            url=url,
            public_jwk=info.public_jwk,
            actor="cli",
        )
    typer.echo(f"registered node {node.node_id} ({node.country}) kid {node.kid}")


@nodes_app.command("list")
def nodes_list(
    as_json: Annotated[bool, typer.Option("--json")] = False, home: Home = DEFAULT_HOME
) -> None:
    from hub.nodes import service as federation

    with _session(home) as session:
        nodes = federation.list_nodes(session=session)
    if as_json:
        typer.echo(json.dumps([n.model_dump(mode="json") for n in nodes], indent=2))
        return
    for n in nodes:
        typer.echo(f"{n.node_id}\t{n.country}\t{n.url}\t{n.kid}")


@agreements_app.command("create")
def agreements_create(
    terms_file: Annotated[Path, typer.Argument()], home: Home = DEFAULT_HOME
) -> None:
    """Store TERMS.json as a new agreement version and sign it as the hub."""
    from contracts.v1 import AgreementTerms
    from hub.agreements import service as agreements
    from hub.home import load_identity, load_key

    terms = read_model(terms_file, AgreementTerms)
    with _session(home) as session:
        read = agreements.create_agreement(
            session=session,
            terms=terms,
            identity=load_identity(home),
            key=load_key(home),
            actor="cli",
        )
    typer.echo(read.model_dump_json(indent=2))


@agreements_app.command("add-signature")
def agreements_add_signature(
    signature_file: Annotated[Path, typer.Argument()], home: Home = DEFAULT_HOME
) -> None:
    """Add a node steward's signature (SIGNATURE.json, an AgreementSignature)."""
    from contracts.v1 import AgreementSignature
    from hub.agreements import service as agreements

    signature = read_model(signature_file, AgreementSignature)
    with _session(home) as session:
        read = agreements.add_signature(session=session, signature=signature, actor="cli")
    terms = read.agreement.terms
    typer.echo(f"{terms.agreement_id} v{terms.version}: {read.status}")


@agreements_app.command("list")
def agreements_list(
    as_json: Annotated[bool, typer.Option("--json")] = False, home: Home = DEFAULT_HOME
) -> None:
    from hub.agreements import service as agreements

    with _session(home) as session:
        reads = agreements.list_agreements(session=session)
    if as_json:
        typer.echo(json.dumps([r.model_dump(mode="json") for r in reads], indent=2))
        return
    for r in reads:
        t = r.agreement.terms
        typer.echo(f"{t.agreement_id}\tv{t.version}\t{r.status}\t{r.agreement.digest[:12]}")
