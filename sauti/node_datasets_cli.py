"""`sauti node import|datasets|dataset-delete` and `sauti node contract ...`: the steward's data."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from node.datasets.file_format import FileFormat
from sauti.cli_common import echo_json, fail
from sauti.node_options import DEFAULT_HOME, Home, Json, settings_for

if TYPE_CHECKING:
    from contracts.v1 import DatasetContract
    from node.datasets.schemas import ContractDraft, ImportMapping, ValidationReport
    from node.datasets.sources import Progress as ProgressCallback
    from node.exceptions import NodeError

app = typer.Typer()
contract_app = typer.Typer(
    no_args_is_help=True, help="Dataset contracts: draft, show, validate, publish."
)

Format = Annotated[
    FileFormat | None,
    typer.Option("--format", help="kobo, odk, csv, xlsx or parquet (default: from the file)."),
]
Codebook = Annotated[
    Path | None, typer.Option("--codebook", help="The XLSForm (.xlsx) of the survey.")
]
Repeat = Annotated[
    str | None, typer.Option("--repeat", help="ODK: import this repeat group's rows.")
]
Encoding = Annotated[
    str | None, typer.Option("--encoding", help="Text encoding, if detection fails.")
]
Delimiter = Annotated[str | None, typer.Option("--delimiter", help="CSV field separator.")]
Sheet = Annotated[str | None, typer.Option("--sheet", help="XLSX: the sheet to read.")]


MappingFile = Annotated[
    Path | None,
    typer.Option(
        "--mapping",
        help="How your export maps onto the contract (the draft's .mapping.json), kept here.",
    ),
]


def _read_mapping(path: Path) -> ImportMapping:
    from node.datasets import service as datasets
    from node.exceptions import NodeError

    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        fail(f"cannot read {path} as JSON")
    try:
        return datasets.parse_mapping(document)
    except NodeError as exc:
        fail(f"{exc.code}: {exc.message}")


def mapping_file(out: Path) -> Path:
    """Where a draft written to `out` puts its mapping: `c.json` -> `c.mapping.json`."""
    return out.with_name(f"{out.stem}.mapping.json")


def _read_contract(path: Path) -> DatasetContract:
    from node.datasets import service as datasets
    from node.exceptions import NodeError

    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        fail(f"cannot read {path} as JSON")
    if not isinstance(document, dict):
        fail(f"{path.name} is not a contract document")
    try:
        return datasets.parse_contract(document)
    except NodeError as exc:
        fail(f"{exc.code}: {exc.message}")


def _print_report(report: ValidationReport, *, err: bool) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(stderr=err, width=120, highlight=False)
    source = report.source
    if source is not None:
        details = ", ".join(
            f"{k} {v}"
            for k, v in (
                ("format", source.format),
                ("encoding", source.encoding),
                ("delimiter", repr(source.delimiter) if source.delimiter else None),
                ("sheet", source.sheet),
                ("repeat", source.repeat),
            )
            if v
        )
        console.print(f"{source.filename}: {details}; sha256 {source.sha256[:16]}…")
    console.print(
        f"contract {report.dataset} v{report.contract_version}: {report.rows_read} rows read,"
        f" {report.rows_kept} kept"
    )
    if report.issues:
        table = Table("severity", "rule", "column", "count", "rows (first)", "what")
        for issue in report.issues:
            rows = ", ".join(str(r) for r in issue.rows)
            if issue.lines:
                rows += f" (file lines {', '.join(str(n) for n in issue.lines)})"
            table.add_row(
                issue.severity,
                issue.rule,
                issue.column or "",
                str(issue.count or ""),
                rows,
                issue.message,
            )
        console.print(table)
    if report.ignored_columns:
        console.print(
            "columns not in the contract (not imported): " + ", ".join(report.ignored_columns)
        )
    if report.derived_columns:
        console.print("columns derived from the codebook: " + ", ".join(report.derived_columns))


@contextmanager
def _progress(enabled: bool) -> Iterator[ProgressCallback | None]:
    """A progress bar on the terminal (stderr); nothing when output is not a terminal."""
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

    if not enabled or not sys.stderr.isatty():
        yield None
        return
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    )
    tasks: dict[str, Any] = {}

    def update(phase: str, done: int, total: int) -> None:
        if phase not in tasks:
            tasks[phase] = bar.add_task(phase, total=total)
        bar.update(tasks[phase], completed=done, total=total)

    with bar:
        yield update


def _refused(exc: NodeError, *, as_json: bool) -> None:
    from node.datasets.exceptions import DatasetInvalid

    report = exc.report if isinstance(exc, DatasetInvalid) else None
    if report is not None:
        if as_json:
            echo_json(report.model_dump(mode="json"))
        else:
            _print_report(report, err=True)
        fail(f"{exc.code}: nothing was imported; fix the rows and columns listed above")
    fail(f"{exc.code}: {exc.message}")


@app.command("import")
def import_command(  # noqa: PLR0917 - typer maps each parameter to an option
    file: Annotated[Path, typer.Argument(help="Kobo, ODK Central, CSV, XLSX or Parquet export.")],
    dataset: Annotated[str, typer.Option("--dataset")],
    home: Home = DEFAULT_HOME,
    fmt: Format = None,
    codebook: Codebook = None,
    contract: Annotated[
        Path | None,
        typer.Option("--contract", help="Contract JSON (published with the import)."),
    ] = None,
    contract_version: Annotated[
        int | None, typer.Option("--contract-version", help="Default: the newest published.")
    ] = None,
    repeat: Repeat = None,
    encoding: Encoding = None,
    delimiter: Delimiter = None,
    sheet: Sheet = None,
    keep_first: Annotated[
        bool,
        typer.Option(
            "--keep-first",
            help="Keep the first max_contributions rows of each unit instead of refusing.",
        ),
    ] = False,
    mapping: MappingFile = None,
    as_json: Json = False,
) -> None:
    """Validate an export against its contract and store it as a new immutable version.

    An export drafted onto a shared codebook is read through the mapping kept for its
    contract version (renamed columns, recoded levels)."""
    from node.datasets import service as datasets
    from node.datasets.schemas import ValidationReport
    from node.exceptions import NodeError

    parsed = _read_contract(contract) if contract is not None else None
    onto = _read_mapping(mapping) if mapping is not None else None
    try:
        with _progress(not as_json) as progress:
            result = datasets.import_file(
                home=home,
                path=file,
                dataset=dataset,
                contract=parsed,
                contract_version=contract_version,
                fmt=fmt,
                codebook_path=codebook,
                repeat=repeat,
                encoding=encoding,
                delimiter=delimiter,
                sheet=sheet,
                excess="keep_first" if keep_first else "refuse",
                settings=settings_for(home),
                progress=progress,
                mapping=onto,
            )
    except NodeError as exc:
        _refused(exc, as_json=as_json)
    assert not isinstance(result, ValidationReport)
    if as_json:
        echo_json(result.model_dump(mode="json"))
        return
    _print_report(result.report, err=False)
    v = result.version
    typer.echo(
        f"imported {v.name} version {v.version} (contract v{v.contract_version},"
        f" {v.rows} rows, sha256 {v.data_sha256[:16]}…)"
    )


@app.command("datasets")
def datasets_command(
    home: Home = DEFAULT_HOME,
    name: Annotated[str | None, typer.Option("--dataset", help="Only this dataset.")] = None,
    as_json: Json = False,
) -> None:
    """Datasets and their import versions at this node (* marks what queries use)."""
    from node.datasets import service as datasets
    from node.exceptions import NodeError

    try:
        versions = datasets.list_versions(home=home, name=name)
    except NodeError as exc:
        fail(f"{exc.code}: {exc.message}")
    if as_json:
        echo_json([v.model_dump(mode="json") for v in versions])
        return
    typer.echo(f"{'dataset':<24} {'ver':>4} {'contract':>8} {'rows':>10}  {'imported':<25} by")
    for v in versions:
        mark = "*" if v.current else " "
        typer.echo(
            f"{v.name:<24} {v.version:>3}{mark} {'v' + str(v.contract_version):>8} {v.rows:>10}"
            f"  {v.created_at[:19]:<25} {v.imported_by}"
        )


@app.command("dataset-delete")
def dataset_delete(
    name: Annotated[str, typer.Argument(help="Dataset name.")],
    version: Annotated[int, typer.Argument(help="Import version to delete.")],
    home: Home = DEFAULT_HOME,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask.")] = False,
) -> None:
    """Delete one import version for good (logged in the audit chain)."""
    from node.datasets import service as datasets
    from node.exceptions import NodeError

    if not yes:
        typer.confirm(f"delete {name} version {version} for good?", abort=True)
    try:
        datasets.delete_version(home=home, name=name, version=version, settings=settings_for(home))
    except NodeError as exc:
        fail(f"{exc.code}: {exc.message}")
    typer.echo(f"deleted {name} version {version}")


@contract_app.command("draft")
def contract_draft(  # noqa: PLR0917 - typer maps each parameter to an option
    file: Annotated[Path, typer.Argument(help="An export to propose a contract for.")],
    dataset: Annotated[str, typer.Option("--dataset", help="Dataset name (a-z, 0-9, _).")],
    home: Home = DEFAULT_HOME,
    fmt: Format = None,
    codebook: Codebook = None,
    repeat: Repeat = None,
    encoding: Encoding = None,
    delimiter: Delimiter = None,
    sheet: Sheet = None,
    out: Annotated[Path | None, typer.Option("--out", help="Write the draft here.")] = None,
    native: Annotated[
        bool, typer.Option("--native", help="Sauti JSON instead of a Table Schema.")
    ] = False,
    categorical: Annotated[
        list[str] | None,
        typer.Option(
            "--categorical",
            help="COLUMN=LEVEL,LEVEL,...: publish a text column's levels, named by you"
            " (repeatable). Without it no text column becomes public.",
        ),
    ] = None,
    show_levels: Annotated[
        list[str] | None,
        typer.Option(
            "--show-levels",
            help="COLUMN: show the distinct values of a candidate text column (repeatable).",
        ),
    ] = None,
    bounds: Annotated[
        list[str] | None,
        typer.Option(
            "--bounds",
            help="COLUMN=LOWER,UPPER[,clip|refuse]: public bounds of a numeric column"
            " (repeatable; values outside are clipped at query time unless refuse).",
        ),
    ] = None,
    from_module: Annotated[
        str | None,
        typer.Option(
            "--from-module",
            help="Draft the contract of a shared module held here (sauti node modules fetch).",
        ),
    ] = None,
    module_version: Annotated[
        int | None, typer.Option("--module-version", help="Default: the newest held.")
    ] = None,
    from_contract: Annotated[
        Path | None,
        typer.Option(
            "--from-contract",
            help="Draft a partner's contract: its published contract (JSON or Table Schema)"
            " or its XLSForm.",
        ),
    ] = None,
    column: Annotated[
        list[str] | None,
        typer.Option(
            "--column",
            help="CODEBOOK_COLUMN=YOUR_COLUMN: which column of your file it is (empty: not"
            " collected). Repeatable.",
        ),
    ] = None,
    recode: Annotated[
        list[str] | None,
        typer.Option(
            "--recode",
            help="CODEBOOK_COLUMN=YOUR_VALUE:LEVEL,...: your codes onto the codebook's levels"
            " (an empty LEVEL leaves the value missing). Repeatable.",
        ),
    ] = None,
    as_json: Json = False,
) -> None:
    """Propose a contract (Table Schema + x-privacy) to edit; identifiers are flagged.

    Text columns the XLSForm does not type stay free text: look at a candidate's values with
    --show-levels, then publish them by naming them with --categorical. With --from-module or
    --from-contract the contract is the shared codebook's (the same at every partner), and
    the draft maps your export onto it (written beside --out as NAME.mapping.json)."""
    from node.datasets import drafting
    from node.datasets import service as datasets
    from node.exceptions import NodeError

    if from_module is not None and from_contract is not None:
        raise typer.BadParameter("draft from one shared codebook", param_hint="--from-module")
    try:
        choices = drafting.Choices(
            categorical=dict(drafting.parse_categorical(c) for c in categorical or ()),
            show_levels=frozenset(show_levels or ()),
            bounds=dict(drafting.parse_bounds(b) for b in bounds or ()),
            columns=dict(drafting.parse_column(c) for c in column or ()),
            recode=dict(drafting.parse_recode(r) for r in recode or ()),
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    try:
        proposed = datasets.draft_contract(
            home=home,
            path=file,
            name=dataset,
            fmt=fmt,
            codebook_path=codebook,
            repeat=repeat,
            encoding=encoding,
            delimiter=delimiter,
            sheet=sheet,
            settings=settings_for(home),
            choices=choices,
            from_module=from_module,
            module_version=module_version,
            from_contract=from_contract,
        )
    except NodeError as exc:
        _refused(exc, as_json=as_json)
    document = (
        proposed.contract.model_dump(mode="json") if native else proposed.contract.to_table_schema()
    )
    text = json.dumps(document, indent=2, ensure_ascii=False)
    mapped = proposed.mapping
    if out is not None:
        out.write_text(text + "\n", encoding="utf-8")
        if mapped is not None:
            mapping_file(out).write_text(mapped.model_dump_json(indent=2) + "\n", encoding="utf-8")
    if as_json:
        echo_json(
            {
                "contract": document,
                "notes": [n.model_dump() for n in proposed.notes],
                "candidates": [c.model_dump() for c in proposed.candidates],
                "shared": proposed.shared,
                "mapping": mapped.model_dump(mode="json") if mapped is not None else None,
            }
        )
        return
    if out is None:
        typer.echo(text)
    _print_draft(proposed, out)


def _print_draft(proposed: ContractDraft, out: Path | None) -> None:
    """The review table, the values asked for and the mapping, on the steward's terminal."""
    from rich.console import Console
    from rich.table import Table

    console = Console(stderr=True, width=120, highlight=False)
    if proposed.shared is not None:
        console.print(f"drafted from {proposed.shared}: its columns, levels, labels and bounds")
    table = Table("column", "flag", "review")
    for note in proposed.notes:
        table.add_row(note.column, note.flag, note.note)
    console.print(table)
    for candidate in proposed.candidates:
        if candidate.values:
            console.print(
                f"values of {candidate.column} (yours to check; shown here only):"
                f" {', '.join(candidate.values)}"
            )
    mapped = proposed.mapping
    if mapped is not None:
        rows = Table("contract column", "your column", "your codes -> levels (shown here only)")
        for name, entry in mapped.columns.items():
            codes = ", ".join(f"{v} -> {lv or '(missing)'}" for v, lv in entry.levels.items())
            rows.add_row(name, entry.column, codes)
        console.print(rows)
    if out is not None:
        publish = f"sauti node contract publish {out}"
        if mapped is not None:
            publish += f" --mapping {mapping_file(out)}"
            console.print(
                f"mapping written to {mapping_file(out)}: it stays on this node", soft_wrap=True
            )
        # Unwrapped, so the command can be copied whole.
        console.print(f"draft written to {out}: review it, then `{publish}`", soft_wrap=True)


@contract_app.command("show")
def contract_show(
    name: Annotated[str, typer.Argument(help="Dataset name.")],
    home: Home = DEFAULT_HOME,
    version: Annotated[int | None, typer.Option("--version")] = None,
    table_schema: Annotated[
        bool, typer.Option("--table-schema", help="As a Frictionless Table Schema.")
    ] = False,
) -> None:
    """Print a published contract (the newest version unless --version)."""
    from node.datasets import service as datasets
    from node.exceptions import NodeError

    try:
        contract = datasets.get_contract(home=home, name=name, version=version)
    except NodeError as exc:
        fail(f"{exc.code}: {exc.message}")
    echo_json(contract.to_table_schema() if table_schema else contract.model_dump(mode="json"))


@contract_app.command("publish")
def contract_publish(
    contract: Annotated[Path, typer.Argument(help="Contract JSON (either form).")],
    home: Home = DEFAULT_HOME,
    mapping: MappingFile = None,
) -> None:
    """Publish a contract version; published versions never change."""
    from node.datasets import service as datasets
    from node.exceptions import NodeError

    parsed = _read_contract(contract)
    onto = _read_mapping(mapping) if mapping is not None else None
    try:
        created = datasets.publish_contract(
            home=home, contract=parsed, settings=settings_for(home), mapping=onto
        )
    except NodeError as exc:
        fail(f"{exc.code}: {exc.message}")
    state = "published" if created else "already published (same text)"
    typer.echo(f"contract {parsed.name} v{parsed.version} {state}")
    if onto is not None:
        typer.echo(f"mapping of your exports onto it kept ({len(onto.columns)} columns)")


@contract_app.command("mapping")
def contract_mapping(
    name: Annotated[str, typer.Argument(help="Dataset name.")],
    home: Home = DEFAULT_HOME,
    version: Annotated[int | None, typer.Option("--version", help="Contract version.")] = None,
    set_file: Annotated[
        Path | None,
        typer.Option("--set", help="Install this mapping (JSON) instead of showing it."),
    ] = None,
) -> None:
    """Show (or --set) how this node's exports map onto a contract drafted from a shared
    codebook. A new local code needs a new mapping, never a new contract."""
    from node.datasets import service as datasets
    from node.exceptions import NodeError

    try:
        if set_file is not None:
            onto = _read_mapping(set_file)
            if onto.dataset != name:
                fail("the mapping names another dataset")
            datasets.set_mapping(home=home, mapping=onto, settings=settings_for(home))
            typer.echo(f"mapping onto {name} v{onto.contract_version} installed")
            return
        found = datasets.get_mapping(home=home, name=name, version=version)
    except NodeError as exc:
        fail(f"{exc.code}: {exc.message}")
    echo_json(found.model_dump(mode="json"))


@contract_app.command("validate")
def contract_validate(  # noqa: PLR0917 - typer maps each parameter to an option
    file: Annotated[
        Path | None, typer.Argument(help="An export to check (nothing is stored).")
    ] = None,
    home: Home = DEFAULT_HOME,
    contract: Annotated[Path | None, typer.Option("--contract", help="Contract JSON.")] = None,
    dataset: Annotated[
        str | None, typer.Option("--dataset", help="Use this dataset's published contract.")
    ] = None,
    contract_version: Annotated[int | None, typer.Option("--contract-version")] = None,
    fmt: Format = None,
    codebook: Codebook = None,
    repeat: Repeat = None,
    encoding: Encoding = None,
    delimiter: Delimiter = None,
    sheet: Sheet = None,
    keep_first: Annotated[bool, typer.Option("--keep-first")] = False,
    mapping: MappingFile = None,
    as_json: Json = False,
) -> None:
    """Check a contract document, and a file against it: a report, exit 1 on any error.

    A draft from a shared codebook is checked through its --mapping (else the one kept for
    that contract version)."""
    from node.datasets import service as datasets
    from node.exceptions import NodeError

    parsed = _read_contract(contract) if contract is not None else None
    onto = _read_mapping(mapping) if mapping is not None else None
    if file is None:
        if parsed is None:
            fail("give --contract, or a FILE to check against --dataset's contract")
        queryable = sum(1 for c in parsed.columns if c.queryable)
        typer.echo(
            f"contract {parsed.name} v{parsed.version} is valid: {len(parsed.columns)} columns,"
            f" {queryable} queryable"
        )
        return
    try:
        report = datasets.validate_file(
            home=home,
            path=file,
            dataset=dataset,
            contract=parsed,
            contract_version=contract_version,
            fmt=fmt,
            codebook_path=codebook,
            repeat=repeat,
            encoding=encoding,
            delimiter=delimiter,
            sheet=sheet,
            excess="keep_first" if keep_first else "refuse",
            settings=settings_for(home),
            mapping=onto,
        )
    except NodeError as exc:
        _refused(exc, as_json=as_json)
    if as_json:
        echo_json(report.model_dump(mode="json"))
    else:
        _print_report(report, err=False)
    if not report.ok:
        fail(f"{len(report.errors)} problems: the file would not be imported")
    if not as_json:
        typer.echo("the file satisfies the contract")
