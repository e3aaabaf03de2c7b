"""`sauti node agreements ...`: what the steward signs, suspends and revokes at the node."""

from pathlib import Path
from typing import Annotated

import typer

from contracts.v1 import SignedAgreement
from node.agreements import service as agreements
from node.exceptions import NodeError
from sauti.cli_common import echo_json, fail, read_model
from sauti.node_options import DEFAULT_HOME, Home, Json, settings_for

app = typer.Typer(no_args_is_help=True, help="Agreements this node honours.")


@app.command("list")
def agreements_list(home: Home = DEFAULT_HOME, as_json: Json = False) -> None:
    records = agreements.list_agreements(home=home, settings=settings_for(home))
    if as_json:
        echo_json([r.model_dump(mode="json") for r in records])
        return
    for r in records:
        typer.echo(f"{r.agreement_id:<24} v{r.version:<3} {r.status:<10} {r.terms.title}")


@app.command("show")
def agreements_show(agreement_id: str, home: Home = DEFAULT_HOME) -> None:
    try:
        records = agreements.show(home=home, agreement_id=agreement_id, settings=settings_for(home))
    except NodeError as exc:
        fail(exc.message)
    echo_json([r.model_dump(mode="json") for r in records])


@app.command("sign")
def agreements_sign(
    file: Annotated[Path, typer.Argument(help="A SignedAgreement JSON from the hub.")],
    home: Home = DEFAULT_HOME,
    out: Annotated[Path | None, typer.Option("--out")] = None,
) -> None:
    """Check a hub-signed agreement and sign it with the node key."""
    agreement: SignedAgreement = read_model(file, SignedAgreement)
    try:
        signature = agreements.sign(home=home, agreement=agreement, settings=settings_for(home))
    except NodeError as exc:
        fail(exc.message)
    text = signature.model_dump_json(indent=2)
    if out is None:
        typer.echo(text)
    else:
        out.write_text(text + "\n")
        typer.echo(f"signature written to {out}")


@app.command("suspend")
def agreements_suspend(agreement_id: str, home: Home = DEFAULT_HOME) -> None:
    try:
        agreements.suspend(home=home, agreement_id=agreement_id, settings=settings_for(home))
    except NodeError as exc:
        fail(exc.message)
    typer.echo(f"agreement {agreement_id} suspended")


@app.command("revoke")
def agreements_revoke(agreement_id: str, home: Home = DEFAULT_HOME) -> None:
    try:
        agreements.revoke(home=home, agreement_id=agreement_id, settings=settings_for(home))
    except NodeError as exc:
        fail(exc.message)
    typer.echo(f"agreement {agreement_id} revoked")
