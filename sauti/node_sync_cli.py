"""`sauti node enroll`, `pull` and `rotate-key`: join a hub, answer it without opening a port,
and replace the node's key."""

import signal
import threading
from pathlib import Path
from typing import Annotated, Literal

import typer

from sauti.cli_common import data_free_logging, fail
from sauti.node_options import DEFAULT_HOME, Home, settings_for

app = typer.Typer(no_args_is_help=True)


@app.command("enroll")
def enroll(
    hub: Annotated[str, typer.Option("--hub", help="The hub's base URL.")],
    token: Annotated[str, typer.Option("--token", help="The secretariat's one-time token.")],
    home: Home = DEFAULT_HOME,
    mode: Annotated[
        Literal["push", "pull"],
        typer.Option("--mode", help="push: the hub calls --url; pull: this node polls the hub."),
    ] = "pull",
    url: Annotated[
        str | None, typer.Option("--url", help="Where the hub reaches this node (push only).")
    ] = None,
) -> None:
    """Enroll with a hub: register this node's key and pin the hub key the token names."""
    from node.exceptions import NodeError
    from node.sync import service as sync

    try:
        accepted = sync.enroll(home=home, hub_url=hub, token=token, mode=mode, url=url)
    except NodeError as exc:
        fail(f"{exc.code}: {exc.message}")
    typer.echo(
        f"enrolled {accepted.node_id} with hub {accepted.hub_id} ({accepted.mode} mode); "
        f"pinned hub key {accepted.hub_kid}"
    )


@app.command("pull")
def pull(
    home: Home = DEFAULT_HOME,
    once: Annotated[bool, typer.Option("--once", help="Poll once, answer, exit.")] = False,
    wait: Annotated[float, typer.Option("--wait", min=0, max=60, help="Long-poll seconds.")] = 20,
) -> None:
    """Answer the hub's tasks by polling it (pull mode; no port is opened)."""
    with data_free_logging():
        _pull(home=home, once=once, wait=wait)


def _pull(*, home: Path, once: bool, wait: float) -> None:
    import httpx

    from node import metrics as node_metrics
    from node.audit import checkpoints
    from node.exceptions import NodeError
    from node.sync import service as sync

    settings = settings_for(home)
    try:
        if once:
            with httpx.Client() as client:
                stats = sync.poll_once(settings=settings, client=client, wait_seconds=wait)
        else:
            stop = threading.Event()
            signal.signal(signal.SIGTERM, lambda *_: stop.set())
            node_metrics.serve_separately(settings)
            if (made := checkpoints.checkpointer(settings)) is not None:
                made.publish_soon()  # what a stop or an unreachable hub left pending
            try:
                stats = sync.run_pull(settings=settings, stop=stop, wait_seconds=wait)
            except KeyboardInterrupt:
                return
    except NodeError as exc:
        fail(f"{exc.code}: {exc.message}")
    typer.echo(
        f"tasks received {stats.received}, answered {stats.answered}, refused {stats.refused}, "
        f"skipped {stats.skipped}, undelivered {stats.undelivered}"
    )


@app.command("rotate-key")
def rotate_key(
    home: Home = DEFAULT_HOME,
    discard_pending: Annotated[
        bool,
        typer.Option(
            "--discard-pending",
            help="Drop a pending new key the hub refused and start over with a fresh one.",
        ),
    ] = False,
) -> None:
    """Replace this node's signing key: the hub pins the new key, then the node switches to it."""
    from node.exceptions import NodeError
    from node.sync import service as sync

    try:
        rotated = sync.rotate_key(home=home, discard_pending=discard_pending)
    except NodeError as exc:
        fail(f"{exc.code}: {exc.message}")
    until = rotated.old_valid_until.isoformat() if rotated.old_valid_until else "not at all"
    typer.echo(
        f"rotated key {rotated.old_kid} -> {rotated.new_kid}; "
        f"the hub accepts the old key until {until}"
    )
