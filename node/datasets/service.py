"""Datasets at a node: draft and publish contracts, validate and import files, list, load, delete.

Relation between versions (see node/datasets/store.py): a contract version is the public
codebook an agreement pins (`DatasetRef.contract_version`); each import is a new immutable
import version validated against one contract version. `load(version=N)` returns the newest
import under contract version N, so refreshed data under an unchanged contract is queried at
once, and a new contract version is queried only once an agreement names it.
"""

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
from pydantic import ValidationError

from contracts import signing
from contracts.v1 import DatasetContract, DatasetInfo
from node.audit import service as audit
from node.datasets import drafting, readers, store, validation
from node.datasets.codebook import Codebook, read_codebook
from node.datasets.exceptions import ContractInvalid, DatasetInvalid, UnknownDataset
from node.datasets.schemas import (
    ContractDraft,
    FileFormat,
    ImportResult,
    LoadedDataset,
    Manifest,
    SourceInfo,
    ValidationReport,
    VersionInfo,
)
from node.datasets.sources import Progress
from node.datasets.validation import Excess
from node.db import transaction, url_for
from node.settings import NodeSettings

STEWARD = "steward"
dataset_dir = store.dataset_dir


def _settings(home: Path, settings: NodeSettings | None) -> NodeSettings:
    return settings or NodeSettings(home=home)


def parse_contract(document: dict[str, Any]) -> DatasetContract:
    """A contract in either form: Sauti JSON, or a Frictionless Table Schema with x-privacy."""
    try:
        if "fields" in document:
            return DatasetContract.from_table_schema(document)
        return DatasetContract.model_validate(document)
    except (ValidationError, ValueError, KeyError, TypeError) as exc:
        raise ContractInvalid(_contract_problem(exc)) from exc


def _contract_problem(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        parts = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"]) or "(document)"
            # pydantic's own message names the rule; drop the input it may quote.
            text = str(err.get("msg", "invalid")).split(" [")[0]
            parts.append(f"{where}: {text}" if err["type"] == "value_error" else where)
        return "the contract is invalid: " + "; ".join(sorted(set(parts)))
    return f"the contract is invalid: {exc}"


def publish_contract(
    *,
    home: Path,
    contract: DatasetContract,
    settings: NodeSettings | None = None,
    by: str = STEWARD,
) -> bool:
    """Publish a contract version (immutable); True if it is new. Logged in the audit chain."""
    created = store.publish_contract(home, contract)
    if created:
        with transaction(url_for(home=home, settings=settings)) as session:
            audit.append(
                session,
                actor=by,
                action="contract_published",
                object=f"dataset:{contract.name}",
                details={"version": contract.version, "contract_digest": signing.digest(contract)},
            )
    return created


def get_contract(*, home: Path, name: str, version: int | None = None) -> DatasetContract:
    return store.read_contract(home, name, version)


def import_frame(
    *,
    home: Path,
    contract: DatasetContract,
    frame: pl.DataFrame,
    settings: NodeSettings | None = None,
    imported_by: str = STEWARD,
    excess: Excess = "refuse",
) -> DatasetInfo:
    """Validate an in-memory frame against `contract` and store it as a new import version."""
    text = frame.select(pl.all().cast(pl.String)).lazy()
    text = text.with_row_index(validation.ROW_INDEX, offset=1)
    source = SourceInfo(
        filename="(frame)", format="parquet", bytes=frame.estimated_size(), sha256=""
    )
    table = readers.Table(frame=text, source=source)
    result = _import(
        home=home,
        contract=contract,
        table=table,
        settings=settings,
        imported_by=imported_by,
        excess=excess,
    )
    return DatasetInfo(contract=contract, contract_digest=result.version.contract_digest)


@contextmanager
def _workdir(home: Path) -> Iterator[Path]:
    base = store.root(home)
    base.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix=".work-", dir=base))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _read(
    *,
    path: Path,
    workdir: Path,
    settings: NodeSettings,
    fmt: FileFormat | None,
    codebook: Codebook | None,
    repeat: str | None,
    encoding: str | None,
    delimiter: str | None,
    sheet: str | None,
    progress: Progress | None,
) -> readers.Table:
    return readers.read_table(
        path=path,
        fmt=fmt,
        workdir=workdir,
        max_bytes=settings.import_max_bytes,
        codebook=codebook,
        repeat=repeat,
        encoding=encoding,
        delimiter=delimiter,
        sheet=sheet,
        progress=progress,
    )


def _contract_for(
    home: Path,
    dataset: str | None,
    contract: DatasetContract | None,
    contract_version: int | None,
) -> DatasetContract:
    if contract is not None:
        if dataset is not None and contract.name != dataset:
            raise ContractInvalid("the contract's name differs from the dataset named")
        return contract
    if dataset is None:
        raise ContractInvalid("name a dataset or give a contract")
    return store.read_contract(home, dataset, contract_version)


def import_file(
    *,
    home: Path,
    path: Path,
    dataset: str | None = None,
    contract: DatasetContract | None = None,
    contract_version: int | None = None,
    fmt: FileFormat | None = None,
    codebook_path: Path | None = None,
    repeat: str | None = None,
    encoding: str | None = None,
    delimiter: str | None = None,
    sheet: str | None = None,
    excess: Excess = "refuse",
    settings: NodeSettings | None = None,
    imported_by: str = STEWARD,
    progress: Progress | None = None,
    dry_run: bool = False,
) -> ImportResult | ValidationReport:
    """Read, validate and (unless `dry_run`) store a file as a new import version.

    Whole or nothing: a file with any error raises DatasetInvalid (its report attached) and
    changes nothing; the contract given is published only together with a good import.
    """
    settings = _settings(home, settings)
    target = _contract_for(home, dataset, contract, contract_version)
    codebook = read_codebook(codebook_path) if codebook_path is not None else None
    with _workdir(home) as work:
        table = _read(
            path=path,
            workdir=work,
            settings=settings,
            fmt=fmt,
            codebook=codebook,
            repeat=repeat,
            encoding=encoding,
            delimiter=delimiter,
            sheet=sheet,
            progress=progress,
        )
        table = readers.derive_for_contract(table, target)
        if dry_run:
            planned = validation.plan(
                contract=target, frame=table.frame, excess=excess, preliminary=table.issues
            )
            return _report(target, table, planned)
        return _import(
            home=home,
            contract=target,
            table=table,
            settings=settings,
            imported_by=imported_by,
            excess=excess,
            progress=progress,
        )


def validate_file(**kwargs: Any) -> ValidationReport:
    """Check a file against a contract without storing anything."""
    report = import_file(**kwargs, dry_run=True)
    assert isinstance(report, ValidationReport)
    return report


def _report(
    contract: DatasetContract, table: readers.Table, planned: validation.Plan
) -> ValidationReport:
    errors = [i for i in planned.issues if i.severity == "error"]
    return ValidationReport(
        dataset=contract.name,
        contract_version=contract.version,
        source=table.source if table.source.filename != "(frame)" else None,
        rows_read=planned.rows_read,
        rows_kept=0 if errors else planned.rows_read - planned.rows_over_limit,
        ok=not errors,
        issues=tuple(planned.issues),
        ignored_columns=planned.ignored,
        derived_columns=tuple(table.derived),
    )


def _import(
    *,
    home: Path,
    contract: DatasetContract,
    table: readers.Table,
    settings: NodeSettings | None,
    imported_by: str,
    excess: Excess,
    progress: Progress | None = None,
) -> ImportResult:
    store.check_publishable(home, contract)  # a conflicting text fails before any work
    planned = validation.plan(
        contract=contract,
        frame=table.frame,
        excess=excess,
        salt=store.salt(home),
        preliminary=table.issues,
    )
    report = _report(contract, table, planned)
    if not report.ok:
        raise DatasetInvalid(
            f"the file does not satisfy contract {contract.name} v{contract.version}:"
            f" {report.summary()}",
            report=report,
        )
    if progress is not None:
        progress("writing", 0, 1)
    staged = store.staging(home, contract.name)
    try:
        parquet = staged / "data.parquet"
        try:
            planned.clean.sink_parquet(parquet)
        except pl.exceptions.PolarsError as exc:
            # The checks passed, so this is a file polars could not re-read: no values here.
            raise DatasetInvalid("the file could not be read to the end as a table") from exc
        rows = int(pl.scan_parquet(parquet).select(pl.len()).collect().item())
        (staged / "report.json").write_text(report.model_dump_json(indent=2), encoding="utf-8")
        # Published with the import, and logged in its entry (contract_published).
        newly_published = store.publish_contract(home, contract)
        digest = signing.digest(contract)
        data_sha256 = store.sha256(parquet)
        version: int | None = None
        try:
            with transaction(url_for(home=home, settings=settings)) as session:
                version = store.commit(staged, home, contract.name)
                manifest = Manifest(
                    name=contract.name,
                    version=version,
                    contract_version=contract.version,
                    rows=rows,
                    data_sha256=data_sha256,
                    contract_digest=digest,
                    created_at=datetime.now(UTC).isoformat(),
                    imported_by=imported_by,
                    source=report.source,
                    rows_dropped_over_contribution_limit=planned.rows_over_limit,
                )
                # Name, versions, digests and who: the row count is exact and stays on disk.
                audit.append(
                    session,
                    actor=imported_by,
                    action="dataset_imported",
                    object=f"dataset:{contract.name}",
                    details={
                        "version": version,
                        "contract_version": contract.version,
                        "contract_digest": digest,
                        "contract_published": newly_published,
                        "data_sha256": data_sha256,
                        "source_sha256": report.source.sha256 if report.source else None,
                    },
                )
                store.write_manifest(home, manifest)  # the version becomes visible here
        except BaseException:
            # Unlogged data must not stay queryable: take the version back out.
            if version is not None:
                store.discard(home, contract.name, version)
            raise
    finally:
        shutil.rmtree(staged, ignore_errors=True)
    if progress is not None:
        progress("writing", 1, 1)
    return ImportResult(version=_info(home, manifest), report=report)


def draft_contract(
    *,
    home: Path,
    path: Path,
    name: str,
    fmt: FileFormat | None = None,
    codebook_path: Path | None = None,
    repeat: str | None = None,
    encoding: str | None = None,
    delimiter: str | None = None,
    sheet: str | None = None,
    settings: NodeSettings | None = None,
    choices: drafting.Choices | None = None,
) -> ContractDraft:
    """Propose a contract from a file (and its XLSForm); nothing is stored.

    `choices`: what the steward decided (levels named for text columns, columns whose values
    to show, bounds); a draft without them never makes a text column public."""
    settings = _settings(home, settings)
    codebook = read_codebook(codebook_path) if codebook_path is not None else None
    with _workdir(home) as work:
        table = _read(
            path=path,
            workdir=work,
            settings=settings,
            fmt=fmt,
            codebook=codebook,
            repeat=repeat,
            encoding=encoding,
            delimiter=delimiter,
            sheet=sheet,
            progress=None,
        )
        errors = [i for i in table.issues if i.severity == "error"]
        if errors:
            report = ValidationReport(
                dataset=name,
                contract_version=0,
                source=table.source,
                rows_read=0,
                rows_kept=0,
                ok=False,
                issues=tuple(table.issues),
            )
            raise DatasetInvalid(f"the file cannot be drafted from: {report.summary()}", report)
        try:
            return drafting.draft(table=table, name=name, codebook=codebook, choices=choices)
        except ValidationError as exc:
            raise ContractInvalid(_contract_problem(exc)) from exc


def list_datasets(*, home: Path) -> list[DatasetInfo]:
    """Public: every contract version that has data, by name then version (for /v1/info)."""
    infos = []
    for name in store.names(home):
        with_data = sorted({m.contract_version for m in store.manifests(home, name)})
        for version in with_data:
            contract = store.read_contract(home, name, version)
            infos.append(DatasetInfo(contract=contract, contract_digest=signing.digest(contract)))
    return infos


def list_versions(*, home: Path, name: str | None = None) -> list[VersionInfo]:
    """Steward only: every import version, with rows, digests, who and when."""
    out: list[VersionInfo] = []
    for dataset in [name] if name is not None else store.names(home):
        if name is not None and not store.dataset_dir(home, name).exists():
            raise UnknownDataset(f"no dataset {name} at this node")
        out.extend(_info(home, m) for m in store.manifests(home, dataset))
    return out


def _info(home: Path, manifest: Manifest) -> VersionInfo:
    current = store.current(home, manifest.name, manifest.contract_version)
    return VersionInfo(
        name=manifest.name,
        version=manifest.version,
        contract_version=manifest.contract_version,
        contract_digest=manifest.contract_digest,
        rows=manifest.rows,
        data_sha256=manifest.data_sha256,
        created_at=manifest.created_at,
        imported_by=manifest.imported_by,
        current=current.version == manifest.version,
        source=manifest.source,
    )


def validation_report(*, home: Path, name: str, version: int) -> ValidationReport | None:
    """Steward only: the report stored with an import version (None if it has none)."""
    store.manifest(home, name, version)  # UnknownDataset if there is no such version
    path = store.version_dir(home, name, version) / "report.json"
    if not path.exists():
        return None
    return ValidationReport.model_validate_json(path.read_text(encoding="utf-8"))


def load(*, home: Path, name: str, version: int | None = None) -> LoadedDataset:
    """The data queries read: the newest import under contract `version` (newest if None)."""
    manifest = store.current(home, name, version)
    return LoadedDataset(
        contract=store.read_contract(home, name, manifest.contract_version),
        contract_digest=manifest.contract_digest,
        parquet_path=store.version_dir(home, name, manifest.version) / "data.parquet",
        data_sha256=manifest.data_sha256,
        version=manifest.version,
    )


def delete_version(
    *,
    home: Path,
    name: str,
    version: int,
    settings: NodeSettings | None = None,
    by: str = STEWARD,
) -> None:
    """Delete one import version for good; logged. Its contract version stays published."""
    manifest = store.manifest(home, name, version)
    with transaction(url_for(home=home, settings=settings)) as session:
        audit.append(
            session,
            actor=by,
            action="dataset_deleted",
            object=f"dataset:{name}",
            details={
                "version": version,
                "contract_version": manifest.contract_version,
                "data_sha256": manifest.data_sha256,
            },
        )
        store.remove(home, name, version)
