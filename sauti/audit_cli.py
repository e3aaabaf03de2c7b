"""`sauti audit` commands: verify, search, export, checkpoint and reconcile hub and node logs.

Each command takes `--home` and works on a node home (node.json) or a hub home (hub.json);
auditors without access to the machines work from exports (`--export`, `reconcile`).
Each side's code is imported where it is used: a node-only install (packaging/sauti-node)
verifies, searches and exports its node's log without the hub's code, and says so when asked
for a hub home, an export or a reconciliation.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from importlib.util import find_spec
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer

from sauti.cli_common import echo_json, fail
from sauti.node_options import settings_for

if TYPE_CHECKING:
    from sqlalchemy.exc import SQLAlchemyError
    from sqlalchemy.orm import Session

    from contracts.v1.audit import AuditEntry, AuditFilter, AuditVerification
    from hub.audit.reconcile import AuditLog

app = typer.Typer(no_args_is_help=True)

Home = Annotated[
    Path | None,
    typer.Option("--home", help="A node or hub home folder (detected from its files)."),
]
Json = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


def _side(home: Path) -> Literal["hub", "node"]:
    side: Literal["hub", "node"]
    for side in ("node", "hub"):
        if (home / f"{side}.json").exists():  # node.home / hub.home IDENTITY_FILE
            _needs(side, f"a {side} home")
            return side
    return fail(f"{home} is neither a node home (node.json) nor a hub home (hub.json)")


def _needs(side: Literal["hub", "node"], what: str) -> None:
    """A split install (packaging/) holds one side's code: say so in one line, no traceback."""
    if find_spec(side) is None:
        other = "hub" if side == "node" else "node"
        fail(f"{what} needs the {side}'s code, which this {other}-only install does not hold")


@contextmanager
def _hub_session(home: Path) -> Iterator[Session]:
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


@contextmanager
def _database_errors() -> Iterator[None]:
    """A database that cannot be read (a corrupt SQLite page, PostgreSQL gone) is one line
    and exit 1, never a traceback: `verify` runs from cron, whose mail is read by people."""
    from sqlalchemy.exc import SQLAlchemyError

    try:
        yield
    except SQLAlchemyError as exc:
        fail(f"database_unreadable: cannot read the audit log's database ({_reason(exc)})")


def _reason(exc: SQLAlchemyError) -> str:
    # The driver's own first line ("database disk image is malformed"), never the SQL text.
    from sqlalchemy.exc import DBAPIError

    cause = exc.orig if isinstance(exc, DBAPIError) else exc
    return (str(cause).strip().splitlines() or [type(cause).__name__])[0][:200]


def _read_export(path: Path) -> AuditLog:
    _needs("hub", "reading an export")
    from pydantic import ValidationError

    from hub.audit.reconcile import parse_export

    try:
        return parse_export(path.read_text(encoding="utf-8").splitlines())
    except OSError:
        fail(f"cannot read {path}")
    except (ValidationError, ValueError):
        fail(f"invalid_export: {path.name} is not a Sauti audit export (JSON Lines)")


def _report(result: AuditVerification, as_json: bool) -> None:
    if as_json:
        echo_json(result.model_dump(mode="json"))
    else:
        typer.echo(
            f"{result.side} {result.owner_id}: {result.entries} entries, head {result.head_seq}, "
            f"{result.checkpoints_checked} checkpoint(s) checked"
        )
    if result.problem is not None:
        fail(f"{result.problem.kind} at entry {result.problem.seq}: {result.problem.message}")
    if not as_json:
        typer.echo("audit log verifies")


@app.command("verify")
def verify(
    home: Home = None,
    export: Annotated[
        Path | None, typer.Option("--export", help="Verify an export file instead of a home.")
    ] = None,
    hub_export: Annotated[
        Path | None,
        typer.Option("--hub-export", help="A hub export: check its copies of the checkpoints."),
    ] = None,
    as_json: Json = False,
) -> None:
    """Check the hash chain, its head and signed checkpoints; exit 1 naming the first bad entry."""
    extra: list[str] = list(_read_export(hub_export).header.checkpoints) if hub_export else []
    if export is not None:
        from hub.audit.reconcile import verify_export

        log = _read_export(export)
        if not log.header.complete:
            fail("a filtered export cannot be verified; export the whole log")

        _report(verify_export(log, checkpoints=extra), as_json)
        return
    if home is None:
        fail("give --home or --export")
    with _database_errors():
        if _side(home) == "node":
            from node.audit import service as node_audit
            from node.exceptions import NodeError
            from node.settings import NodeSettings

            try:
                result = node_audit.verify(
                    home=home, settings=NodeSettings(home=home), hub_checkpoints=extra
                )
            except NodeError as exc:
                fail(exc.message)
        else:
            from hub.audit import service as hub_audit
            from hub.home import load_identity as load_hub_identity

            with _hub_session(home) as session:
                result = hub_audit.verify(session=session, identity=load_hub_identity(home))
    _report(result, as_json)


def _filter(
    *,
    agreement: str | None,
    analyst: str | None,
    node: str | None,
    query: str | None,
    action: str | None,
    since: datetime | None,
    until: datetime | None,
) -> AuditFilter:
    from contracts.v1.audit import AuditFilter

    return AuditFilter(
        agreement_id=agreement,
        analyst=analyst,
        node_id=node,
        query_id=query,
        action=action,
        since=since,
        until=until,
    )


Agreement = Annotated[str | None, typer.Option("--agreement", help="Agreement id.")]
AnalystOpt = Annotated[str | None, typer.Option("--analyst", help="Analyst (token name).")]
NodeOpt = Annotated[str | None, typer.Option("--node", help="Node id.")]
QueryOpt = Annotated[str | None, typer.Option("--query", help="Query id.")]
ActionOpt = Annotated[str | None, typer.Option("--action", help="Action, e.g. decision.")]
Since = Annotated[datetime | None, typer.Option("--since", help="From this time (UTC if naive).")]
Until = Annotated[datetime | None, typer.Option("--until", help="Before this time.")]


def _entries(home: Path, flt: AuditFilter) -> Iterator[AuditEntry]:
    if _side(home) == "node":
        from node.audit import service as node_audit
        from node.settings import NodeSettings

        yield from node_audit.iter_entries(database_url=NodeSettings(home=home).db_url, flt=flt)
    else:
        from hub.audit import service as hub_audit

        with _hub_session(home) as session:
            yield from hub_audit.iter_entries(session=session, flt=flt)


@app.command("search")
def search(  # noqa: PLR0917 - typer maps each parameter to an option
    home: Home = None,
    agreement: Agreement = None,
    analyst: AnalystOpt = None,
    node: NodeOpt = None,
    query: QueryOpt = None,
    action: ActionOpt = None,
    since: Since = None,
    until: Until = None,
    limit: Annotated[int, typer.Option("--limit", min=1)] = 100,
    as_json: Json = False,
) -> None:
    """List entries by agreement, analyst, node, query, action and period."""
    if home is None:
        fail("give --home")
    flt = _filter(
        agreement=agreement,
        analyst=analyst,
        node=node,
        query=query,
        action=action,
        since=since,
        until=until,
    )
    shown = 0
    with _database_errors():
        for shown, entry in enumerate(_entries(home, flt), start=1):
            if as_json:
                typer.echo(entry.model_dump_json())
            else:
                details = json.dumps(entry.details, sort_keys=True, ensure_ascii=False)
                typer.echo(
                    f"{entry.seq:>7} {entry.at.isoformat(timespec='seconds')} {entry.actor} "
                    f"{entry.action} {entry.object} {details}"
                )
            if shown >= limit:
                break
    if shown == 0 and not as_json:
        typer.echo("0 entries")


@app.command("export")
def export(  # noqa: PLR0917 - typer maps each parameter to an option
    home: Home = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="File to write (default stdout).")
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="jsonl or csv")] = "jsonl",
    agreement: Agreement = None,
    analyst: AnalystOpt = None,
    node: NodeOpt = None,
    query: QueryOpt = None,
    action: ActionOpt = None,
    since: Since = None,
    until: Until = None,
) -> None:
    """Export the log as JSON Lines (header, then entries; what `reconcile` reads) or CSV."""
    from contracts.v1.audit import csv_chunks
    from node.audit import service as node_audit

    if home is None:
        fail("give --home")
    if fmt not in ("jsonl", "csv"):
        fail("--format must be jsonl or csv")
    flt = _filter(
        agreement=agreement,
        analyst=analyst,
        node=node,
        query=query,
        action=action,
        since=since,
        until=until,
    )
    chunks: Iterator[str]
    with _database_errors():
        if fmt == "csv":
            chunks = csv_chunks(_entries(home, flt))
        elif _side(home) == "node":
            from node.audit import service as node_audit

            settings = settings_for(home)
            node_audit.record_export(database_url=settings.db_url, actor="cli", fmt=fmt, flt=flt)
            chunks = (
                line + "\n"
                for line in node_audit.export_lines(home=home, settings=settings, flt=flt)
            )
        else:
            chunks = _hub_jsonl(home, flt)
        if out is None:
            for chunk in chunks:
                typer.echo(chunk, nl=False)
            return
        with out.open("w", encoding="utf-8") as handle:
            for chunk in chunks:
                handle.write(chunk)
    typer.echo(f"exported to {out}")


def _hub_jsonl(home: Path, flt: AuditFilter) -> Iterator[str]:
    from hub.audit import service as hub_audit
    from hub.home import load_identity as load_hub_identity

    identity = load_hub_identity(home)
    with _hub_session(home) as session:
        hub_audit.record_export(session=session, actor="cli", fmt="jsonl", flt=flt)
        yield from hub_audit.export_jsonl(session=session, identity=identity, flt=flt)


@app.command("checkpoint")
def checkpoint(
    home: Home = None,
    publish: Annotated[bool, typer.Option("--publish/--no-publish")] = True,
) -> None:
    """(Node) sign the chain head and publish pending checkpoints to the pinned hub URL."""
    if home is None or _side(home) != "node":
        fail("checkpoint runs on a node home (--home)")
    from node.audit import service as node_audit
    from node.exceptions import NodeError

    settings = settings_for(home)
    with _database_errors():
        try:
            made = node_audit.make_checkpoint(home=home, settings=settings)
            typer.echo(f"signed checkpoint at entry {made.seq}")
            if publish:
                sent = node_audit.publish_pending(home=home, settings=settings)
                typer.echo(f"published {sent} checkpoint(s) to the hub")
        except NodeError as exc:
            fail(f"{exc.code}: {exc.message}")


@app.command("reconcile")
def reconcile_command(
    node_exports: Annotated[list[Path], typer.Argument(help="Node exports (JSON Lines).")],
    hub_export: Annotated[
        Path | None, typer.Option("--hub-export", help="The hub's export (JSON Lines).")
    ] = None,
    home: Home = None,
    overdue_entries: Annotated[
        int | None,
        typer.Option(
            "--checkpoint-overdue-entries",
            min=0,
            help="Flag a node with more log entries than this after the newest checkpoint "
            "the hub holds (0: never).",
            show_default="the hub's HUB_CHECKPOINT_OVERDUE_ENTRIES default",
        ),
    ] = None,
    as_json: Json = False,
) -> None:
    """Compare the hub's log with each node's; list every difference, exit 1 if any."""
    _needs("hub", "reconcile")
    from contracts.v1.audit import AuditFilter
    from hub.audit.reconcile import parse_export, reconcile
    from hub.settings import CHECKPOINT_OVERDUE_ENTRIES

    if overdue_entries is None:
        overdue_entries = CHECKPOINT_OVERDUE_ENTRIES
    if hub_export is not None:
        hub_log = _read_export(hub_export)
    elif home is not None and _side(home) == "hub":
        hub_log = parse_export(list(_hub_jsonl(home, AuditFilter())))
    else:
        fail("give --hub-export FILE or --home of a hub")
    if not hub_log.header.complete:
        fail("the hub export is filtered; reconcile needs the whole log")
    try:
        if overdue_entries is None:
            overdue_entries = CHECKPOINT_OVERDUE_ENTRIES
        result = reconcile(
            hub_log, [_read_export(p) for p in node_exports], overdue_entries=overdue_entries
        )
    except ValueError as exc:
        fail(f"invalid_export: {exc}")
    if as_json:
        echo_json(result.model_dump(mode="json"))
    else:
        typer.echo(
            f"hub {result.hub_id}: {result.hub_queries} queries; nodes {', '.join(result.nodes)}: "
            f"{result.node_releases} releases"
        )
        for diff in result.differences:
            where = " ".join(
                f"{k}={v}"
                for k, v in (
                    ("node", diff.node_id),
                    ("query", diff.query_id),
                    ("agreement", diff.agreement_id),
                )
                if v
            )
            typer.echo(f"  {diff.kind}: {where}: {diff.message}")
    if result.differences:
        fail(f"{len(result.differences)} difference(s) found")
    if not as_json:
        typer.echo("hub and node logs reconcile")
