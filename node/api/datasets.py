"""Steward routes for datasets: contracts, dry-run validation, imports, versions. No raw rows."""

import re
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from node.api.deps import SettingsDep, StewardDep
from node.auth.schemas import Steward
from node.datasets import drafting, service, store
from node.datasets.exceptions import ContractInvalid, FileTooLarge
from node.datasets.file_format import FileFormat
from node.datasets.schemas import (
    ImportMapping,
    ImportResult,
    ValidationReport,
    VersionInfo,
)
from node.settings import NodeSettings
from node.web import multipart

router = APIRouter(prefix="/v1/steward/datasets", tags=["steward", "datasets"])
# The routes whose body is a data file, streamed to disk: the app includes them under
# NODE_IMPORT_MAX_BYTES instead of its general body limit.
uploads = APIRouter(prefix="/v1/steward/datasets", tags=["steward", "datasets"])
Name = Annotated[str, "dataset name"]
FormatQ = Annotated[FileFormat | None, Query(alias="format")]
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def _by(steward: Steward) -> str:
    return f"steward:{steward.name}"


@contextmanager
def _upload_dir(settings: NodeSettings) -> Iterator[Path]:
    folder = store.root(settings.home) / ".uploads" / secrets.token_hex(8)
    folder.mkdir(parents=True)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


async def _receive(request: Request, folder: Path, filename: str, limit: int) -> Path:
    """Stream the request body to disk, refusing it once it passes the node's size limit."""
    target = folder / (_SAFE.sub("_", Path(filename).name) or "upload")
    size = 0
    with target.open("wb") as f:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise FileTooLarge(
                    f"the upload is larger than this node's import limit of {limit} bytes"
                )
            f.write(chunk)
    return target


@router.get("", response_model=list[VersionInfo])
async def list_versions(settings: SettingsDep, _steward: StewardDep) -> list[VersionInfo]:
    """Every import version: contract version, rows, digests, who imported it and when."""
    return await run_in_threadpool(service.list_versions, home=settings.home)


@router.get("/{name}/contract")
async def show_contract(
    name: Name,
    settings: SettingsDep,
    _steward: StewardDep,
    version: int | None = None,
    table_schema: bool = False,
) -> dict[str, Any]:
    """A published contract, natively or as a Frictionless Table Schema with x-privacy."""
    contract = service.get_contract(home=settings.home, name=name, version=version)
    return contract.to_table_schema() if table_schema else contract.model_dump(mode="json")


@router.post("/{name}/contracts", status_code=201)
async def publish_contract(
    name: Name,
    document: Annotated[dict[str, Any], Body()],
    settings: SettingsDep,
    steward: StewardDep,
) -> dict[str, Any]:
    """Publish a contract version (either form). The same text again is accepted, once."""
    contract = service.parse_contract(document)
    if contract.name != name:
        raise ContractInvalid("the contract's name differs from the dataset in the path")
    created = await run_in_threadpool(
        service.publish_contract,
        home=settings.home,
        contract=contract,
        settings=settings,
        by=_by(steward),
    )
    return {"name": contract.name, "version": contract.version, "created": created}


@uploads.post("/{name}/draft")
async def draft_contract(
    name: Name,
    request: Request,
    *,
    settings: SettingsDep,
    _steward: StewardDep,
    filename: str = "upload.csv",
    fmt: FormatQ = None,
    repeat: str | None = None,
    sheet: str | None = None,
    categorical: Annotated[list[str], Query()] = [],  # noqa: B006 - FastAPI copies defaults
    show_levels: Annotated[list[str], Query()] = [],  # noqa: B006
    bounds: Annotated[list[str], Query()] = [],  # noqa: B006
    from_module: str | None = None,
    module_version: Annotated[int | None, Query(ge=1)] = None,
    column: Annotated[list[str], Query()] = [],  # noqa: B006
    recode: Annotated[list[str], Query()] = [],  # noqa: B006
) -> dict[str, Any]:
    """Propose a contract from an uploaded export: the request body is the file, or a
    multipart form with the file as `upload`, the survey's XLSForm as `codebook` and a
    partner's codebook (contract JSON, Table Schema or XLSForm) as `partner`.

    `categorical=COLUMN=LEVEL,LEVEL` (repeatable) publishes a text column's levels as named;
    `show_levels=COLUMN` returns a candidate column's distinct values (to this steward only);
    `bounds=COLUMN=LOWER,UPPER[,clip|refuse]`. `from_module` (and `module_version`) or the
    `partner` part: draft the shared codebook's contract, with `column=CODEBOOK=YOURS` and
    `recode=CODEBOOK=VALUE:LEVEL,...` mapping the file onto it; the answer's `mapping` is
    installed with `PUT .../mapping` once the contract is published."""
    try:
        choices = drafting.Choices(
            categorical=dict(drafting.parse_categorical(c) for c in categorical),
            show_levels=frozenset(show_levels),
            bounds=dict(drafting.parse_bounds(b) for b in bounds),
            columns=dict(drafting.parse_column(c) for c in column),
            recode=dict(drafting.parse_recode(r) for r in recode),
        )
    except ValueError as exc:
        raise ContractInvalid(str(exc)) from exc
    with _upload_dir(settings) as folder:
        files: dict[str, Path] = {}
        if request.headers.get("content-type", "").startswith("multipart/form-data"):
            form = await multipart.receive(
                request,
                folder=folder,
                files={"upload": "export", "codebook": "codebook", "partner": "partner"},
                limit=settings.import_max_bytes,
                before_file=lambda _fields: None,  # a bearer token: nothing for CSRF to ride on
            )
            files = form.files
            if "upload" not in files:
                raise ContractInvalid("the form needs the export as its `upload` file")
        else:
            files["upload"] = await _receive(request, folder, filename, settings.import_max_bytes)
        if from_module is not None and "partner" in files:
            raise ContractInvalid("draft from one shared codebook: a module or a partner's file")
        draft = await run_in_threadpool(
            service.draft_contract,
            home=settings.home,
            path=files["upload"],
            name=name,
            fmt=fmt,
            codebook_path=files.get("codebook"),
            repeat=repeat,
            sheet=sheet,
            settings=settings,
            choices=choices,
            from_module=from_module,
            module_version=module_version,
            from_contract=files.get("partner"),
        )
    return {
        "contract": draft.contract.model_dump(mode="json"),
        "table_schema": draft.contract.to_table_schema(),
        "notes": [n.model_dump() for n in draft.notes],
        "candidates": [c.model_dump() for c in draft.candidates],
        "shared": draft.shared,
        "mapping": draft.mapping.model_dump(mode="json") if draft.mapping else None,
    }


@router.get("/{name}/mapping", response_model=ImportMapping)
async def show_mapping(
    name: Name, settings: SettingsDep, _steward: StewardDep, version: int | None = None
) -> ImportMapping:
    """How this node's exports map onto a contract version (steward only: its own codes)."""
    return await run_in_threadpool(
        service.get_mapping, home=settings.home, name=name, version=version
    )


@router.put("/{name}/mapping", response_model=ImportMapping)
async def set_mapping(
    name: Name,
    document: Annotated[dict[str, Any], Body()],
    settings: SettingsDep,
    steward: StewardDep,
) -> ImportMapping:
    """Install (or replace) the mapping of exports onto a published contract version; logged
    by contract column names only."""
    mapping = service.parse_mapping(document)
    if mapping.dataset != name:
        raise ContractInvalid("the mapping names another dataset than the path")
    await run_in_threadpool(
        service.set_mapping, home=settings.home, mapping=mapping, settings=settings, by=_by(steward)
    )
    return mapping


@uploads.post("/{name}/validate", response_model=ValidationReport)
async def validate_upload(
    name: Name,
    request: Request,
    *,
    settings: SettingsDep,
    _steward: StewardDep,
    filename: str = "upload.csv",
    fmt: FormatQ = None,
    contract_version: int | None = None,
    repeat: str | None = None,
    sheet: str | None = None,
    keep_first: bool = False,
) -> ValidationReport:
    """Check an uploaded export against a published contract; nothing is stored."""
    with _upload_dir(settings) as folder:
        path = await _receive(request, folder, filename, settings.import_max_bytes)
        return await run_in_threadpool(
            service.validate_file,
            home=settings.home,
            path=path,
            dataset=name,
            contract_version=contract_version,
            fmt=fmt,
            repeat=repeat,
            sheet=sheet,
            excess="keep_first" if keep_first else "refuse",
            settings=settings,
        )


@uploads.post("/{name}/imports", response_model=ImportResult, status_code=201)
async def import_upload(
    name: Name,
    request: Request,
    *,
    settings: SettingsDep,
    steward: StewardDep,
    filename: str = "upload.csv",
    fmt: FormatQ = None,
    contract_version: int | None = None,
    repeat: str | None = None,
    sheet: str | None = None,
    keep_first: bool = False,
) -> ImportResult:
    """Import an uploaded export as a new version, whole or not at all (422 with a summary)."""
    with _upload_dir(settings) as folder:
        path = await _receive(request, folder, filename, settings.import_max_bytes)
        result = await run_in_threadpool(
            service.import_file,
            home=settings.home,
            path=path,
            dataset=name,
            contract_version=contract_version,
            fmt=fmt,
            repeat=repeat,
            sheet=sheet,
            excess="keep_first" if keep_first else "refuse",
            settings=settings,
            imported_by=_by(steward),
        )
    assert isinstance(result, ImportResult)
    return result


@router.delete("/{name}/versions/{version}", status_code=204)
async def delete_version(
    name: Name, version: int, settings: SettingsDep, steward: StewardDep
) -> Response:
    """Delete one import version for good; the deletion is logged in the audit chain."""
    await run_in_threadpool(
        service.delete_version,
        home=settings.home,
        name=name,
        version=version,
        settings=settings,
        by=_by(steward),
    )
    return Response(status_code=204)
