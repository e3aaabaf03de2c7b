"""`sauti node import` and `sauti node datasets`: the steward's datasets."""

from pathlib import Path
from typing import Annotated

import typer

from contracts.v1 import DatasetContract
from node.datasets import service as datasets
from node.exceptions import NodeError
from sauti.cli_common import echo_json, fail, read_model
from sauti.node_options import DEFAULT_HOME, Home, Json, settings_for

app = typer.Typer()


@app.command("import")
def import_command(
    file: Annotated[Path, typer.Argument(help="CSV or Parquet export.")],
    dataset: Annotated[str, typer.Option("--dataset")],
    contract: Annotated[Path, typer.Option("--contract", help="Dataset contract JSON.")],
    home: Home = DEFAULT_HOME,
) -> None:
    """Validate an export against its contract and store it as a new version."""
    parsed: DatasetContract = read_model(contract, DatasetContract)
    if parsed.name != dataset:
        fail("the contract's name differs from --dataset")
    try:
        info = datasets.import_file(
            home=home, contract=parsed, path=file, settings=settings_for(home)
        )
    except NodeError as exc:
        fail(exc.message)
    typer.echo(f"imported {info.contract.name} v{info.contract.version} ({info.contract_digest})")


@app.command("datasets")
def datasets_command(home: Home = DEFAULT_HOME, as_json: Json = False) -> None:
    """Datasets and versions stored at this node."""
    infos = datasets.list_datasets(home=home)
    if as_json:
        echo_json([i.model_dump(mode="json") for i in infos])
        return
    for info in infos:
        typer.echo(f"{info.contract.name:<24} v{info.contract.version:<4} {info.contract_digest}")
