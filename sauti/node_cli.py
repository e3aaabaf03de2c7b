"""`sauti node` sub-commands: thin wrappers over the node's services."""

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from contracts.v1 import DatasetContract, SignedAgreement
from node.agreements import service as agreements
from node.audit import service as audit
from node.datasets import service as datasets
from node.exceptions import NodeError
from node.home import init_home, pin_hub
from node.ledger import service as ledger
from node.settings import NodeSettings

app = typer.Typer(no_args_is_help=True)
agreements_app = typer.Typer(no_args_is_help=True, help="Agreements this node honours.")
app.add_typer(agreements_app, name="agreements")

Home = Annotated[Path, typer.Option("--home", envvar="SAUTI_HOME", help="The node's home folder.")]
Json = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
DEFAULT_HOME = Path("sauti-node")


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(1)


def _settings(home: Path) -> NodeSettings:
    return NodeSettings(home=home)


def _echo_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, ensure_ascii=False, default=str))


def _read_model(path: Path, model: type[Any]) -> Any:
    try:
        return model.model_validate_json(path.read_text())
    except (OSError, ValidationError) as exc:
        _fail(f"{path} is not a valid {model.__name__} ({type(exc).__name__})")


@app.command("init")
def init(
    name: Annotated[str, typer.Option("--name")],
    country: Annotated[str, typer.Option("--country", help="UN M49 code, e.g. 524")],
    home: Home = DEFAULT_HOME,
    node_id: Annotated[str | None, typer.Option("--node-id")] = None,
) -> None:
    """Create a node home: identity and Ed25519 key."""
    try:
        identity = init_home(home, name=name, country=country, node_id=node_id)
    except NodeError as exc:
        _fail(exc.message)
    typer.echo(f"node {identity.node_id} created in {home} (kid {identity.kid})")


@app.command("pin-hub")
def pin_hub_command(
    hub_id: Annotated[str, typer.Option("--hub-id")],
    jwk_file: Annotated[Path, typer.Argument(help="The hub's public JWK (JSON).")],
    home: Home = DEFAULT_HOME,
) -> None:
    """Pin the hub whose requests and agreements this node honours."""
    try:
        pin_hub(home, hub_id=hub_id, public_jwk=json.loads(jwk_file.read_text()))
    except (NodeError, OSError, ValueError) as exc:
        _fail(exc.message if isinstance(exc, NodeError) else "cannot read the hub JWK file")
    typer.echo(f"pinned hub {hub_id}")


@app.command("import")
def import_command(
    file: Annotated[Path, typer.Argument(help="CSV or Parquet export.")],
    dataset: Annotated[str, typer.Option("--dataset")],
    contract: Annotated[Path, typer.Option("--contract", help="Dataset contract JSON.")],
    home: Home = DEFAULT_HOME,
) -> None:
    """Validate an export against its contract and store it as a new version."""
    parsed: DatasetContract = _read_model(contract, DatasetContract)
    if parsed.name != dataset:
        _fail("the contract's name differs from --dataset")
    try:
        info = datasets.import_file(home=home, contract=parsed, path=file, settings=_settings(home))
    except NodeError as exc:
        _fail(exc.message)
    typer.echo(f"imported {info.contract.name} v{info.contract.version} ({info.contract_digest})")


@app.command("datasets")
def datasets_command(home: Home = DEFAULT_HOME, as_json: Json = False) -> None:
    """Datasets and versions stored at this node."""
    infos = datasets.list_datasets(home=home)
    if as_json:
        _echo_json([i.model_dump(mode="json") for i in infos])
        return
    for info in infos:
        typer.echo(f"{info.contract.name:<24} v{info.contract.version:<4} {info.contract_digest}")


@app.command("budget")
def budget_command(home: Home = DEFAULT_HOME, as_json: Json = False) -> None:
    """Privacy budget per agreement (zCDP rho)."""
    lines = ledger.budget_report(home=home, settings=_settings(home))
    if as_json:
        _echo_json([line.model_dump(mode="json") for line in lines])
        return
    typer.echo(
        f"{'agreement':<24} {'ver':>3} {'budget':>8} {'spent':>8} {'left':>8} {'queries':>7}"
    )
    for ln in lines:
        typer.echo(
            f"{ln.agreement_id:<24} {ln.version:>3} {ln.rho_budget:>8.4f} {ln.rho_spent:>8.4f} "
            f"{ln.rho_remaining:>8.4f} {ln.queries:>7}"
        )


@app.command("audit-verify")
def audit_verify(home: Home = DEFAULT_HOME) -> None:
    """Verify the node's audit hash chain."""
    bad = audit.verify_chain(database_url=_settings(home).db_url)
    if bad is not None:
        _fail(f"the audit chain breaks at entry {bad}")
    typer.echo("audit chain verifies")


@app.command("serve")
def serve(
    home: Home = DEFAULT_HOME,
    host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port")] = 8701,
) -> None:
    """Serve the node's HTTP API."""
    import uvicorn  # noqa: PLC0415  (only this command needs the server)

    from node.app import create_app  # noqa: PLC0415

    uvicorn.run(create_app(_settings(home)), host=host, port=port)


@agreements_app.command("list")
def agreements_list(home: Home = DEFAULT_HOME, as_json: Json = False) -> None:
    records = agreements.list_agreements(home=home, settings=_settings(home))
    if as_json:
        _echo_json([r.model_dump(mode="json") for r in records])
        return
    for r in records:
        typer.echo(f"{r.agreement_id:<24} v{r.version:<3} {r.status:<10} {r.terms.title}")


@agreements_app.command("show")
def agreements_show(agreement_id: str, home: Home = DEFAULT_HOME) -> None:
    try:
        records = agreements.show(home=home, agreement_id=agreement_id, settings=_settings(home))
    except NodeError as exc:
        _fail(exc.message)
    _echo_json([r.model_dump(mode="json") for r in records])


@agreements_app.command("sign")
def agreements_sign(
    file: Annotated[Path, typer.Argument(help="A SignedAgreement JSON from the hub.")],
    home: Home = DEFAULT_HOME,
    out: Annotated[Path | None, typer.Option("--out")] = None,
) -> None:
    """Check a hub-signed agreement and sign it with the node key."""
    agreement: SignedAgreement = _read_model(file, SignedAgreement)
    try:
        signature = agreements.sign(home=home, agreement=agreement, settings=_settings(home))
    except NodeError as exc:
        _fail(exc.message)
    text = signature.model_dump_json(indent=2)
    if out is None:
        typer.echo(text)
    else:
        out.write_text(text + "\n")
        typer.echo(f"signature written to {out}")


@agreements_app.command("suspend")
def agreements_suspend(agreement_id: str, home: Home = DEFAULT_HOME) -> None:
    try:
        agreements.suspend(home=home, agreement_id=agreement_id, settings=_settings(home))
    except NodeError as exc:
        _fail(exc.message)
    typer.echo(f"agreement {agreement_id} suspended")


@agreements_app.command("revoke")
def agreements_revoke(agreement_id: str, home: Home = DEFAULT_HOME) -> None:
    try:
        agreements.revoke(home=home, agreement_id=agreement_id, settings=_settings(home))
    except NodeError as exc:
        _fail(exc.message)
    typer.echo(f"agreement {agreement_id} revoked")
