"""Datasets at a node: draft and publish contracts, validate and import files, list, load, delete.

Relation between versions (see node/datasets/store.py): a contract version is the public
codebook an agreement pins (`DatasetRef.contract_version`); each import is a new immutable
import version validated against one contract version. `load(version=N)` returns the newest
import under contract version N, so refreshed data under an unchanged contract is queried at
once, and a new contract version is queried only once an agreement names it.
"""

import json
import math
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
from contracts.v1 import DatasetContract, DatasetInfo, PublishedContracts
from node.audit import service as audit
from node.datasets import drafting, mappings, readers, shared, store, validation
from node.datasets.codebook import Codebook, read_codebook
from node.datasets.exceptions import (
    CodebookInvalid,
    ContractInvalid,
    DatasetInvalid,
    ImportMappingInvalid,
    UnknownDataset,
)
from node.datasets.file_format import FileFormat
from node.datasets.schemas import (
    ContractDraft,
    ImportMapping,
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
from node.harmonisation import store as modules
from node.harmonisation.exceptions import ModuleNotHeld
from node.home import load_identity, load_key
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


def published_details(contract: DatasetContract) -> dict[str, Any]:
    """What the audit chain records of a contract's publication: its version and digest and,
    for bounds a draft estimated from the data by the DP rule, the columns and the rho each
    spent (once, now, outside any agreement's budget). No bound or other value is logged."""
    details: dict[str, Any] = {
        "version": contract.version,
        "contract_digest": signing.digest(contract),
    }
    estimated = {c.name: c.bounds_rho for c in contract.columns if c.bounds_rho is not None}
    if estimated:
        details["dp_bounds"] = estimated
        details["dp_bounds_rho"] = math.fsum(estimated.values())
    return details


def publish_contract(
    *,
    home: Path,
    contract: DatasetContract,
    settings: NodeSettings | None = None,
    by: str = STEWARD,
    mapping: ImportMapping | None = None,
) -> bool:
    """Publish a contract version (immutable); True if it is new. Logged in the audit chain.

    `mapping`: how this node's exports map onto it (drafted from a shared codebook), kept
    beside it on the node; given for a version already published, it replaces the old one."""
    if mapping is not None:
        check_mapping(mapping, contract)
    created = store.publish_contract(home, contract)
    if mapping is not None:
        store.write_mapping(home, mapping)
    if created or mapping is not None:
        with transaction(url_for(home=home, settings=settings)) as session:
            if created:
                details = published_details(contract)
                if mapping is not None:
                    details["mapped_columns"] = sorted(mapping.columns)
                audit.append(
                    session,
                    actor=by,
                    action="contract_published",
                    object=f"dataset:{contract.name}",
                    details=details,
                )
            elif mapping is not None:
                _log_mapping(session, mapping, by=by)
    return created


def check_mapping(mapping: ImportMapping, contract: DatasetContract) -> None:
    found = mappings.problems(mapping, contract)
    if found:
        raise ImportMappingInvalid("the mapping does not fit the contract: " + "; ".join(found))


def _log_mapping(session: Any, mapping: ImportMapping, *, by: str) -> None:
    # Contract column names only: the node's own codes stay in its mapping file.
    audit.append(
        session,
        actor=by,
        action="dataset_mapping_set",
        object=f"dataset:{mapping.dataset}",
        details={
            "contract_version": mapping.contract_version,
            "mapped_columns": sorted(mapping.columns),
        },
    )


def set_mapping(
    *,
    home: Path,
    mapping: ImportMapping,
    settings: NodeSettings | None = None,
    by: str = STEWARD,
) -> None:
    """Install (or replace) how this node's exports map onto a published contract version:
    a new local code appearing in an export needs no new contract. Logged."""
    contract = store.read_contract(home, mapping.dataset, mapping.contract_version)
    check_mapping(mapping, contract)
    store.write_mapping(home, mapping)
    with transaction(url_for(home=home, settings=settings)) as session:
        _log_mapping(session, mapping, by=by)


def get_mapping(*, home: Path, name: str, version: int | None = None) -> ImportMapping:
    """Steward only: the mapping of exports onto a contract version (the newest if None)."""
    contract = store.read_contract(home, name, version)
    found = store.read_mapping(home, name, contract.version)
    if found is None:
        raise UnknownDataset(f"dataset {name} v{contract.version} has no mapping at this node")
    return found


def parse_mapping(document: object) -> ImportMapping:
    """A mapping document (JSON) as the steward edited it; errors name fields, never values."""
    try:
        return ImportMapping.model_validate(document)
    except ValidationError as exc:
        where = sorted({".".join(str(p) for p in e["loc"]) or "(document)" for e in exc.errors()})
        raise ImportMappingInvalid(f"the mapping has invalid fields: {', '.join(where)}") from exc


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
    mapping: ImportMapping | None = None,
) -> ImportResult | ValidationReport:
    """Read, validate and (unless `dry_run`) store a file as a new import version.

    Whole or nothing: a file with any error raises DatasetInvalid (its report attached) and
    changes nothing; the contract given is published only together with a good import, and
    so is `mapping` (how the file maps onto it). Without one, the mapping kept for the
    contract version (if any) renames and recodes the file first.
    """
    settings = _settings(home, settings)
    target = _contract_for(home, dataset, contract, contract_version)
    if mapping is not None:
        check_mapping(mapping, target)
    onto = mapping or store.read_mapping(home, target.name, target.version)
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
        if onto is not None:
            table = mappings.apply(table, onto)
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
            mapping=mapping,
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
    mapping: ImportMapping | None = None,
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
        # Published with the import, and logged in its entry (contract_published), with the
        # mapping the file was read through when one came with the contract.
        newly_published = store.publish_contract(home, contract)
        if mapping is not None:
            store.write_mapping(home, mapping)
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
                details: dict[str, Any] = {
                    "version": version,
                    "contract_version": contract.version,
                    "contract_digest": digest,
                    "contract_published": newly_published,
                    "data_sha256": data_sha256,
                    "source_sha256": report.source.sha256 if report.source else None,
                }
                if newly_published:
                    # What a publication records (the rho DP-estimated bounds spent).
                    details |= published_details(contract) | {"version": version}
                if mapping is not None:
                    details["mapped_columns"] = sorted(mapping.columns)
                audit.append(
                    session,
                    actor=imported_by,
                    action="dataset_imported",
                    object=f"dataset:{contract.name}",
                    details=details,
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
    from_module: str | None = None,
    module_version: int | None = None,
    from_contract: Path | None = None,
) -> ContractDraft:
    """Propose a contract from a file (and its XLSForm); nothing is stored.

    `choices`: what the steward decided (levels named for text columns, columns whose values
    to show, bounds); a draft without them never makes a text column public. `from_module`
    (a module held here) or `from_contract` (a partner's codebook file): draft the shared
    codebook's contract and map the file onto it (`ContractDraft.mapping`)."""
    settings = _settings(home, settings)
    common = None
    if from_module is not None or from_contract is not None:
        common = shared_codebook(
            home=home,
            module=from_module,
            module_version=module_version,
            path=from_contract,
            settings=settings,
        )
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
            return drafting.draft(
                table=table, name=name, codebook=codebook, choices=choices, shared=common
            )
        except ValidationError as exc:
            raise ContractInvalid(_contract_problem(exc)) from exc


def shared_codebook(
    *,
    home: Path,
    module: str | None = None,
    module_version: int | None = None,
    path: Path | None = None,
    settings: NodeSettings | None = None,
) -> shared.SharedCodebook:
    """The shared codebook a draft starts from: a module pinned here (its signature checked
    with the pinned hub key; the newest version held unless `module_version`), or a
    partner's codebook file: its published contract (Sauti JSON, Table Schema, or an entry of
    its /v1/info) or the XLSForm it drafts from. Nothing is stored; errors name the file."""
    if (module is None) == (path is None):
        raise CodebookInvalid("draft from one shared codebook: a module or a partner's file")
    if module is not None:
        version = module_version or max(modules.held_versions(home, module), default=None)
        if version is None:
            raise ModuleNotHeld(
                f"module {module} is not held here: fetch it (sauti node modules fetch {module})"
            )
        return shared.from_module(modules.load_module(home, module, version))
    assert path is not None
    return _partner_codebook(home, path, _settings(home, settings))


def _partner_codebook(home: Path, path: Path, settings: NodeSettings) -> shared.SharedCodebook:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise CodebookInvalid(f"{path.name} cannot be read") from exc
    if raw.startswith(b"PK"):
        # A partner's XLSForm: its contract is what drafting its own export would propose
        # (read through an empty export of its main table: no data, so nothing from data).
        book = read_codebook(path)
        with _workdir(home) as work:
            header = work / "form.csv"
            header.write_text(
                ",".join(q.name for q in book.questions if q.repeat is None) + "\n",
                encoding="utf-8",
            )
            table = _read(
                path=header,
                workdir=work,
                settings=settings,
                fmt="csv",
                codebook=book,
                repeat=None,
                encoding="utf-8",
                delimiter=",",
                sheet=None,
                progress=None,
            )
            proposed = drafting.draft(table=table, name="partner_form", codebook=book)
        return shared.from_contract(proposed.contract, source=f"partner form {book.form_id}")
    not_one = (
        f"{path.name} is not a partner's codebook: give its published contract (Sauti JSON or"
        " Table Schema) or its XLSForm (.xlsx)"
    )
    signed = (
        f"{path.name} is a signed document: pin a module with `sauti node modules add` (or"
        " fetch it), then draft with --from-module"
    )
    try:
        document = json.loads(raw.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise CodebookInvalid(signed if raw.strip().startswith(b"eyJ") else not_one) from exc
    if not isinstance(document, dict):
        raise CodebookInvalid(not_one)
    if "jws" in document:
        raise CodebookInvalid(signed)
    if "contract" in document and "contract_digest" in document:
        try:
            info = DatasetInfo.model_validate(document)
        except ValidationError as exc:
            raise CodebookInvalid(f"{not_one}: {_contract_problem(exc)}") from exc
        if signing.digest(info.contract) != info.contract_digest:
            raise CodebookInvalid(f"{path.name}: the contract does not match its digest")
        return shared.from_contract(info.contract)
    try:
        contract = parse_contract(document)
    except ContractInvalid as exc:
        raise CodebookInvalid(f"{not_one} ({exc.message})") from exc
    return shared.from_contract(contract)


def list_datasets(*, home: Path) -> list[DatasetInfo]:
    """Public: every contract version that has data, by name then version (for /v1/info)."""
    infos = []
    for name in store.names(home):
        with_data = sorted({m.contract_version for m in store.manifests(home, name)})
        for version in with_data:
            contract = store.read_contract(home, name, version)
            infos.append(DatasetInfo(contract=contract, contract_digest=signing.digest(contract)))
    return infos


def signed_contracts(*, home: Path) -> str:
    """Every contract version with data, signed with the node key (a compact JWS of
    `PublishedContracts`): what `GET /v1/contracts` serves and a pull node posts to its hub."""
    published = PublishedContracts(
        node_id=load_identity(home).node_id,
        issued_at=datetime.now(UTC),
        datasets=tuple(list_datasets(home=home)),
    )
    return signing.sign(published, load_key(home))


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
