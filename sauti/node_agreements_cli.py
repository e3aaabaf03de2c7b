"""`sauti node agreements ...`: what the steward reviews, signs, suspends and revokes."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from sauti.cli_common import echo_json, fail, read_model
from sauti.node_options import DEFAULT_HOME, Home, Json, settings_for

if TYPE_CHECKING:
    from node.agreements.schemas import AgreementRecord, NoticeReport, StatusOutcome

app = typer.Typer(no_args_is_help=True, help="Agreements this node honours.")
Reason = Annotated[str, typer.Option("--reason", help="Why; sent to the hub with the notice.")]


@app.command("list")
def agreements_list(home: Home = DEFAULT_HOME, as_json: Json = False) -> None:
    """Every signed version and its status at this node."""
    from node.agreements import service as agreements

    records = agreements.list_agreements(home=home, settings=settings_for(home))
    if as_json:
        echo_json([r.model_dump(mode="json") for r in records])
        return
    for r in records:
        typer.echo(
            f"{r.agreement_id:<24} v{r.version:<3} {r.status:<10} {_at_hub(r):<22} {r.terms.title}"
        )


def _at_hub(record: AgreementRecord) -> str:
    """Signed here / received by the hub / in force there, in a few words."""
    if record.hub_answer is not None:
        return f"hub refused: {record.hub_answer}"
    if record.hub_received_at is None:
        return "not yet at the hub"
    return "in force at the hub" if record.hub_status == "active" else "received by the hub"


@app.command("show")
def agreements_show(agreement_id: str, home: Home = DEFAULT_HOME, as_json: Json = False) -> None:
    """The signed versions of one agreement, the newest in plain language."""
    from contracts.agreement_rules import summary_text
    from node.agreements import service as agreements
    from node.exceptions import NodeError

    try:
        records = agreements.show(home=home, agreement_id=agreement_id, settings=settings_for(home))
    except NodeError as exc:
        fail(exc.message)
    if as_json:
        echo_json([r.model_dump(mode="json") for r in records])
        return
    for r in records:
        typer.echo(f"v{r.version}  {r.status:<10} signed {r.signed_at:%Y-%m-%d}  digest {r.digest}")
    typer.echo("")
    typer.echo(summary_text(records[-1].terms))


@app.command("sign")
def agreements_sign(
    source: Annotated[
        str, typer.Argument(help="An agreement id (fetched from the pinned hub) or a JSON file.")
    ],
    home: Home = DEFAULT_HOME,
    out: Annotated[Path | None, typer.Option("--out", help="Write the signature here.")] = None,
    yes: Annotated[bool, typer.Option("--yes", help="Sign without asking after the summary.")] = (
        False
    ),
) -> None:
    """Review an agreement version in plain language, then sign it with the node key."""
    from contracts.v1 import SignedAgreement
    from node.agreements import service as agreements
    from node.exceptions import NodeError

    settings = settings_for(home)
    path = Path(source)
    try:
        agreement: SignedAgreement = (
            read_model(path, SignedAgreement)
            if path.is_file()
            else agreements.fetch_from_hub(home=home, agreement_id=source)
        )
        preview = agreements.preview(home=home, agreement=agreement, settings=settings)
    except NodeError as exc:
        fail(f"{exc.code}: {exc.message}")
    typer.echo(preview.summary)
    typer.echo(f"Digest: {preview.digest}")
    if preview.already_signed:
        typer.echo("This version is already signed at this node.")
    # A script (no terminal) signs after printing the summary; a person is asked.
    elif not yes and sys.stdin.isatty() and not typer.confirm("Sign this version?"):
        fail("not signed")
    try:
        outcome = agreements.sign_and_deliver(home=home, agreement=agreement, settings=settings)
    except NodeError as exc:
        fail(f"{exc.code}: {exc.message}")
    text = outcome.signature.model_dump_json(indent=2)
    if out is None:
        typer.echo(text)
    else:
        out.write_text(text + "\n")
        typer.echo(f"signature written to {out}")
    _delivered(outcome.report)


def _delivered(report: NoticeReport) -> None:
    """Where the signature is now: at the hub, waiting to be sent, or refused by the hub."""
    if report.sent:
        typer.echo("the hub has received the signature")
    elif report.refused:
        typer.echo("the hub refused the signature; see `sauti node agreements list`")
    elif report.pending:
        typer.echo(
            f"the hub is not told yet ({report.message or 'unreachable'}); it is retried "
            "(`sauti node agreements report`), or hand the hub a signature file (--out)"
        )


def _changed(outcome: StatusOutcome, verb: str) -> None:
    if not outcome.changed:
        typer.echo(f"agreement {outcome.agreement_id} was already {outcome.status}")
        return
    typer.echo(f"agreement {outcome.agreement_id} {verb}: in force at this node from now on")
    _report(outcome.report)


def _report(report: NoticeReport | None) -> None:
    if report is None:
        return
    if report.pending:
        typer.echo(
            f"the hub is not told yet ({report.message or 'unreachable'}); "
            "`sauti node agreements report` retries"
        )
    elif report.sent:
        typer.echo(f"reported to the hub ({report.sent} notice(s))")
    if report.refused:
        typer.echo(f"the hub refused {report.refused} notice(s); see the audit log")


def _status(action: str, agreement_id: str, home: Path, reason: str) -> None:
    from node.agreements import service as agreements
    from node.exceptions import NodeError

    settings = settings_for(home)
    change = {
        "suspended": agreements.suspend,
        "resumed": agreements.resume,
        "revoked": agreements.revoke,
    }[action]
    try:
        outcome = change(home=home, agreement_id=agreement_id, settings=settings, reason=reason)
    except NodeError as exc:
        fail(f"{exc.code}: {exc.message}")
    if outcome.changed:
        outcome = outcome.model_copy(
            update={"report": agreements.report_notices(home=home, settings=settings)}
        )
    _changed(outcome, action)


@app.command("suspend")
def agreements_suspend(agreement_id: str, home: Home = DEFAULT_HOME, reason: Reason = "") -> None:
    """Refuse every request under the agreement from the next one on, until resumed."""
    _status("suspended", agreement_id, home, reason)


@app.command("resume")
def agreements_resume(agreement_id: str, home: Home = DEFAULT_HOME, reason: Reason = "") -> None:
    """Honour a suspended agreement again."""
    _status("resumed", agreement_id, home, reason)


@app.command("revoke")
def agreements_revoke(agreement_id: str, home: Home = DEFAULT_HOME, reason: Reason = "") -> None:
    """Refuse every version of the agreement for good, hub reachable or not."""
    _status("revoked", agreement_id, home, reason)


@app.command("report")
def agreements_report(home: Home = DEFAULT_HOME) -> None:
    """Send the hub the signatures, suspensions and revocations it has not confirmed yet."""
    from node.agreements import service as agreements

    outbox = agreements.report_all(home=home, settings=settings_for(home))
    report = outbox.total()
    if not (report.sent or report.pending or report.refused):
        typer.echo("nothing to report")
    if outbox.signatures.sent:
        typer.echo(f"the hub has received {outbox.signatures.sent} signature(s)")
    if outbox.signatures.refused:
        typer.echo(f"the hub refused {outbox.signatures.refused} signature(s); see the audit log")
    _report(outbox.notices)
    if outbox.signatures.pending and not outbox.notices.pending:
        typer.echo(
            f"the hub has not received {outbox.signatures.pending} signature(s) yet "
            f"({outbox.signatures.message or 'unreachable'})"
        )
    if report.pending:
        raise typer.Exit(1)


@app.command("budget")
def agreements_budget(
    agreement_id: Annotated[str | None, typer.Argument()] = None,
    home: Home = DEFAULT_HOME,
    as_json: Json = False,
) -> None:
    """What was spent this period, by whom, on what, and what is left."""
    from contracts.budget import figure as rho
    from node.exceptions import NodeError
    from node.ledger import service as ledger

    settings = settings_for(home)
    if agreement_id is None:
        lines = ledger.budget_report(home=home, settings=settings)
        if as_json:
            echo_json([line.model_dump(mode="json") for line in lines])
            return
        typer.echo(
            f"{'agreement':<24} {'ver':>3} {'period':<9} {'budget':>10} {'spent':>10} "
            f"{'left':>10} {'queries':>7} status"
        )
        for ln in lines:
            typer.echo(
                f"{ln.agreement_id:<24} {ln.version:>3} {ln.period:<9} {rho(ln.rho_budget):>10} "
                f"{rho(ln.rho_spent):>10} {rho(ln.rho_remaining):>10} {ln.queries:>7} {ln.status}"
            )
        return
    try:
        detail = ledger.budget_detail(home=home, agreement_id=agreement_id, settings=settings)
    except NodeError as exc:
        fail(f"{exc.code}: {exc.message}")
    if as_json:
        echo_json(detail.model_dump(mode="json"))
        return
    ln = detail.line
    typer.echo(
        f"{ln.agreement_id} v{ln.version} ({ln.status}), period {ln.period}: "
        f"spent rho {rho(ln.rho_spent)} of {rho(ln.rho_budget)}, {rho(ln.rho_remaining)} left "
        f"after {ln.queries} queries (all time: {rho(ln.rho_spent_all_time)})"
    )
    for title, rows in (
        ("by organisation", detail.by_organisation),
        ("by version", detail.by_version),
        ("by period", detail.by_period),
    ):
        typer.echo(f"\n{title}:")
        for row in rows:
            typer.echo(f"  {row.key:<32} rho {rho(row.rho)} in {row.queries} queries")
    typer.echo("\ncharges:")
    for c in detail.charges:
        on = f"{c.measure}({c.column or ''}) by {','.join(c.group_by) or '-'}"
        typer.echo(
            f"  {c.charged_at:%Y-%m-%d %H:%M} v{c.version} rho {rho(c.rho)} "
            f"{c.requested_by} ({c.organisation or 'hub'}) {c.dataset}: {on}"
        )
