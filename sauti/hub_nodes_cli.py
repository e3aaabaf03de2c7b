"""`sauti hub worker`, `sauti hub enroll-token ...` and `sauti hub nodes remove`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer

from sauti.cli_common import data_free_logging, fail, processes_option
from sauti.hub_options import DEFAULT_HOME, Home

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

app = typer.Typer(no_args_is_help=True)
enroll_token_app = typer.Typer(
    no_args_is_help=True, help="One-time enrollment tokens for new nodes (shown once)."
)
nodes_app = typer.Typer(no_args_is_help=True)


@contextmanager
def _session(home: Path) -> Iterator[Session]:
    from hub.db import init_db, make_engine
    from hub.exceptions import HubError
    from hub.settings import HubSettings

    engine = make_engine(HubSettings(home=home).effective_database_url)
    try:
        with init_db(engine)() as session:
            yield session
    except HubError as exc:
        fail(f"{exc.code}: {exc.message}")
    finally:
        engine.dispose()


@app.command("worker")
def worker(
    home: Home = DEFAULT_HOME,
    pool: Annotated[
        Literal["threads", "solo"] | None,
        typer.Option(
            "--pool",
            help="threads or solo (polars under prefork can deadlock); default HUB_WORKER_POOL.",
        ),
    ] = None,
    concurrency: Annotated[
        int | None,
        typer.Option(
            "--concurrency",
            min=1,
            max=256,
            help="Deliveries in flight per process; default HUB_WORKER_CONCURRENCY (8).",
        ),
    ] = None,
    processes: Annotated[
        int | None,
        processes_option(
            "Worker processes to run; default HUB_WORKER_PROCESSES (1).",
        ),
    ] = None,
    loglevel: Annotated[str, typer.Option("--loglevel")] = "info",
) -> None:
    """Run the Celery worker(s) that deliver queries to push nodes and complete deadlines."""
    from hub.exceptions import HubError
    from hub.home import load_identity
    from hub.settings import HubSettings

    settings = HubSettings(home=home)
    if not settings.celery_enabled:
        fail("no_broker: set HUB_CELERY_BROKER_URL (e.g. redis://127.0.0.1:6379/0)")
    try:
        load_identity(home)
    except HubError as exc:
        fail(f"{exc.code}: {exc.message}")
    chosen_pool = pool or settings.worker_pool
    threads = 1 if chosen_pool == "solo" else concurrency or settings.worker_concurrency
    count = processes or settings.worker_processes
    if count == 1:
        run_worker(home, pool=chosen_pool, concurrency=threads, loglevel=loglevel)
    else:
        from sauti import worker_processes

        worker_processes.supervise(
            count,
            target=run_worker,
            home=home,
            pool=chosen_pool,
            concurrency=threads,
            loglevel=loglevel,
        )


def run_worker(home: Path, *, pool: str, concurrency: int, loglevel: str) -> None:
    """One Celery worker process (its own broker connection, event loop and database pool)."""
    from celery.signals import setup_logging  # type: ignore[import-untyped]

    from hub.queries.worker import create_celery
    from hub.settings import HubSettings
    from runtime.apps import settle_heap

    settings = HubSettings(home=home)
    # Celery configures nothing itself when someone handles this signal: logs stay data-free.
    setup_logging.connect(lambda **_: None, weak=False)
    celery = create_celery(settings)
    settle_heap()
    with data_free_logging(loglevel):
        celery.worker_main(
            [
                "worker",
                f"--pool={pool}",
                f"--concurrency={concurrency}",
                f"--loglevel={loglevel}",
                f"--queues={settings.celery_queue}",
                "--without-gossip",
                "--without-mingle",
            ]
        )


@enroll_token_app.command("create")
def enroll_token_create(
    home: Home = DEFAULT_HOME,
    node_id: Annotated[
        str | None, typer.Option("--node-id", help="Only this node id may use it.")
    ] = None,
    note: Annotated[str, typer.Option("--note", help="Who it is for.")] = "",
    ttl_hours: Annotated[float | None, typer.Option("--ttl-hours", min=0.01, max=720)] = None,
) -> None:
    """Issue a one-time enrollment token; give it to the node's steward (shown only once)."""
    from hub.exceptions import HubError
    from hub.home import load_identity
    from hub.nodes import service as federation
    from hub.settings import HubSettings

    settings = HubSettings(home=home)
    try:
        identity = load_identity(home)
    except HubError as exc:
        fail(f"{exc.code}: {exc.message}")
    with _session(home) as session:
        issued = federation.create_enrollment_token(
            session=session,
            identity=identity,
            actor="cli",
            node_id=node_id,
            note=note,
            ttl_hours=ttl_hours or settings.enrollment_token_ttl_hours,
        )
    typer.echo(issued.token)
    typer.echo(f"expires {issued.expires_at.isoformat()} (token {issued.token_id})", err=True)


@enroll_token_app.command("list")
def enroll_token_list(
    home: Home = DEFAULT_HOME, as_json: Annotated[bool, typer.Option("--json")] = False
) -> None:
    """Issued tokens (never the tokens themselves): for whom, expiry, use."""
    from hub.nodes import service as federation

    with _session(home) as session:
        tokens = federation.list_enrollment_tokens(session=session)
    if as_json:
        typer.echo(json.dumps([t.model_dump(mode="json") for t in tokens], indent=2))
        return
    for t in tokens:
        used = f"used by {t.used_by}" if t.used_at else "unused"
        typer.echo(f"{t.token_id}\t{t.node_id or '-'}\t{t.expires_at.isoformat()}\t{used}")


@nodes_app.command("remove")
def nodes_remove(node_id: Annotated[str, typer.Argument()], home: Home = DEFAULT_HOME) -> None:
    """Remove a node: from now on its polls, answers and re-enrollment are refused."""
    from hub.nodes import service as federation

    with _session(home) as session:
        node = federation.remove_node(session=session, node_id=node_id, actor="cli")
    typer.echo(f"node {node.node_id} removed")
