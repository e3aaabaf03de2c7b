"""`sauti hub agreements draft|update|propose|versions|show|suspend|resume|revoke|document`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from sauti.cli_common import fail, read_model
from sauti.hub_options import DEFAULT_HOME, Home

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from hub.agreements.schemas import AgreementRead, PartyStatus

app = typer.Typer(no_args_is_help=True)

Version = Annotated[int | None, typer.Option("--version", min=1, help="Default: the latest.")]
Reason = Annotated[str, typer.Option("--reason")]
ACTOR = "cli"


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


def _line(read: AgreementRead) -> str:
    t = read.agreement.terms
    missing = (
        f"  waiting for: {', '.join(read.missing_signers)}" if read.status == "proposed" else ""
    )
    return f"{t.agreement_id}\tv{t.version}\t{read.status}\t{read.agreement.digest[:12]}{missing}"


@app.command("draft")
def agreements_draft(
    terms_file: Annotated[Path, typer.Argument()], home: Home = DEFAULT_HOME
) -> None:
    """Store TERMS.json as an unsigned draft: a new agreement or the next version of one."""
    from contracts.v1 import AgreementTerms
    from hub.agreements import service as agreements
    from hub.home import load_identity

    terms = read_model(terms_file, AgreementTerms)
    with _session(home) as session:
        read = agreements.create_draft(
            session=session, terms=terms, identity=load_identity(home), actor=ACTOR
        )
    typer.echo(_line(read))


@app.command("update")
def agreements_update(
    terms_file: Annotated[Path, typer.Argument()], home: Home = DEFAULT_HOME
) -> None:
    """Replace a draft's terms with TERMS.json (same agreement id and version)."""
    from contracts.v1 import AgreementTerms
    from hub.agreements import service as agreements
    from hub.home import load_identity

    terms = read_model(terms_file, AgreementTerms)
    with _session(home) as session:
        read = agreements.update_draft(
            session=session,
            agreement_id=terms.agreement_id,
            version=terms.version,
            terms=terms,
            identity=load_identity(home),
            actor=ACTOR,
        )
    typer.echo(_line(read))


@app.command("propose")
def agreements_propose(
    agreement_id: str, version: Annotated[int, typer.Argument(min=1)], home: Home = DEFAULT_HOME
) -> None:
    """Freeze a draft and sign it for the secretariat; stewards may now sign at their nodes."""
    from hub.agreements import service as agreements
    from hub.home import load_identity, load_key

    with _session(home) as session:
        read = agreements.propose(
            session=session,
            agreement_id=agreement_id,
            version=version,
            identity=load_identity(home),
            key=load_key(home),
            actor=ACTOR,
        )
    typer.echo(_line(read))


@app.command("versions")
def agreements_versions(
    agreement_id: str,
    home: Home = DEFAULT_HOME,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Every version with its status; older versions stay readable."""
    from hub.agreements import service as agreements

    with _session(home) as session:
        reads = agreements.list_versions(session=session, agreement_id=agreement_id)
    if as_json:
        typer.echo(json.dumps([r.model_dump(mode="json") for r in reads], indent=2))
        return
    for read in reads:
        typer.echo(_line(read))


def _one(session: Session, agreement_id: str, version: int | None) -> AgreementRead:
    from hub.agreements import service as agreements

    if version is None:
        return agreements.get_agreement(session=session, agreement_id=agreement_id)
    return agreements.get_version(session=session, agreement_id=agreement_id, version=version)


@app.command("show")
def agreements_show(
    agreement_id: str,
    home: Home = DEFAULT_HOME,
    version: Version = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """One version in plain language (or as the SignedAgreement JSON a steward signs)."""
    from contracts.agreement_rules import summary_text

    with _session(home) as session:
        read = _one(session, agreement_id, version)
    if as_json:
        typer.echo(read.agreement.model_dump_json(indent=2))
        return
    typer.echo(_line(read))
    typer.echo("")
    typer.echo(summary_text(read.agreement.terms))


def _status(agreement_id: str, status: PartyStatus, home: Path, reason: str) -> None:
    from hub.agreements import service as agreements
    from hub.home import load_identity

    with _session(home) as session:
        read = agreements.set_hub_status(
            session=session,
            agreement_id=agreement_id,
            status=status,
            identity=load_identity(home),
            actor=ACTOR,
            reason=reason,
        )
    typer.echo(_line(read))


@app.command("suspend")
def agreements_suspend(agreement_id: str, home: Home = DEFAULT_HOME, reason: Reason = "") -> None:
    """Stop queries under the agreement at the hub until resumed."""
    _status(agreement_id, "suspended", home, reason)


@app.command("resume")
def agreements_resume(agreement_id: str, home: Home = DEFAULT_HOME, reason: Reason = "") -> None:
    _status(agreement_id, "active", home, reason)


@app.command("revoke")
def agreements_revoke(agreement_id: str, home: Home = DEFAULT_HOME, reason: Reason = "") -> None:
    """End the agreement at the hub for good."""
    _status(agreement_id, "revoked", home, reason)


@app.command("document")
def agreements_document(
    agreement_id: str,
    out: Annotated[Path, typer.Option("--out", help="FILE.html or FILE.pdf")],
    home: Home = DEFAULT_HOME,
    version: Version = None,
) -> None:
    """Write the printable MoU (HTML or PDF by the file's extension)."""
    from hub.agreements import document

    if out.suffix.lower() not in (".html", ".pdf"):
        fail("--out must end in .html or .pdf")
    with _session(home) as session:
        read = _one(session, agreement_id, version)
    if out.suffix.lower() == ".pdf":
        out.write_bytes(document.render_pdf(read))
    else:
        out.write_text(document.render_html(read), encoding="utf-8")
    typer.echo(f"MoU written to {out}")
