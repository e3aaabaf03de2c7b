"""The steward's audit routes on the node: search, verify, export, checkpoint."""

from collections.abc import Iterator
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from contracts.v1.audit import AuditCheckpoint, AuditEntry, AuditVerification, csv_chunks
from node.api.deps import SettingsDep, StewardDep
from node.audit import checkpoints
from node.audit import service as audit
from runtime import edge
from runtime.audit_log import AuditQuery, ExportQuery

router = APIRouter(prefix="/v1/steward/audit", tags=["steward"])


@router.get("/entries", response_model=list[AuditEntry])
async def search(
    params: Annotated[AuditQuery, Query()], settings: SettingsDep, _steward: StewardDep
) -> list[AuditEntry]:
    """Entries matching the filter, `limit` at a time after `after_seq`."""
    return await run_in_threadpool(
        audit.search,
        database_url=settings.db_url,
        flt=params.filter(),
        after_seq=params.after_seq,
        limit=params.limit,
    )


@router.get("/verify", response_model=AuditVerification)
async def verify(settings: SettingsDep, _steward: StewardDep) -> AuditVerification:
    return await run_in_threadpool(audit.verify, home=settings.home, settings=settings)


@router.post("/checkpoints", response_model=AuditCheckpoint, status_code=201)
async def checkpoint(settings: SettingsDep, _steward: StewardDep) -> AuditCheckpoint:
    """Sign the chain head now; it is sent to the pinned hub URL in the background."""
    return await run_in_threadpool(checkpoints.sign_now, settings)


@router.get("/export", responses=edge.file_answer("application/x-ndjson", "text/csv"))
def export(
    params: Annotated[ExportQuery, Query()], settings: SettingsDep, steward: StewardDep
) -> StreamingResponse:
    """JSON Lines (header line, then one entry a line) or CSV, streamed."""
    flt = params.filter()
    audit.record_export(
        database_url=settings.db_url, actor=f"steward:{steward.name}", fmt=params.format, flt=flt
    )

    def lines() -> Iterator[str]:
        if params.format == "csv":
            yield from csv_chunks(audit.iter_entries(database_url=settings.db_url, flt=flt))
        else:
            for line in audit.export_lines(home=settings.home, settings=settings, flt=flt):
                yield line + "\n"

    media = "text/csv" if params.format == "csv" else "application/x-ndjson"
    return StreamingResponse(
        lines(),
        media_type=media,
        headers={"Content-Disposition": f'attachment; filename="node-audit.{params.format}"'},
    )
