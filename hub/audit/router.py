"""Routes of the audit log: auditors search, verify and export; nodes publish checkpoints."""

from collections.abc import Iterator
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from contracts.v1 import Signed
from contracts.v1.audit import AuditVerification
from hub.audit import checkpoints, service
from hub.audit.schemas import (
    CheckpointRead,
    EntryPage,
    NodeCheckpointStatus,
)
from hub.deps import Auditor, SessionDep, StateDep
from runtime import edge
from runtime.audit_log import AuditQuery, ExportQuery

router = APIRouter(prefix="/v1/audit", tags=["audit"])
# Published by nodes, authenticated by the node's signature against its pinned key.
checkpoints_router = APIRouter(prefix="/v1/nodes", tags=["audit"])


@router.get("/entries")
def search_entries(
    params: Annotated[AuditQuery, Query()], _user: Auditor, session: SessionDep
) -> EntryPage:
    found = service.search(
        session=session, flt=params.filter(), after_seq=params.after_seq, limit=params.limit
    )
    more = len(found) == params.limit
    return EntryPage(entries=found, next_after_seq=found[-1].seq if found and more else None)


@router.get("/verify")
def verify(_user: Auditor, session: SessionDep, state: StateDep) -> AuditVerification:
    return service.verify(session=session, identity=state.identity)


@router.get("/checkpoints")
def list_checkpoints(
    _user: Auditor,
    session: SessionDep,
    node_id: Annotated[str | None, Query(max_length=100)] = None,
) -> list[CheckpointRead]:
    return service.list_checkpoints(session=session, node_id=node_id)


@router.get("/checkpoints/status")
def checkpoint_status(
    _user: Auditor, session: SessionDep, state: StateDep
) -> list[NodeCheckpointStatus]:
    """Per node: the newest checkpoint the hub holds, answers since, and whether overdue."""
    return checkpoints.checkpoint_status(
        session=session, overdue_entries=state.settings.checkpoint_overdue_entries
    )


@router.get("/export", responses=edge.file_answer("application/x-ndjson", "text/csv"))
def export(
    params: Annotated[ExportQuery, Query()], user: Auditor, state: StateDep
) -> StreamingResponse:
    """The log as JSON Lines (header line, then one entry a line) or CSV, streamed."""
    flt = params.filter()
    with state.sessions() as session:
        service.record_export(
            session=session, actor=f"user:{user.name}", fmt=params.format, flt=flt
        )

    def lines() -> Iterator[str]:
        # Its own session: the response streams after the route has returned.
        with state.sessions() as session:
            if params.format == "csv":
                yield from service.export_csv(session=session, flt=flt)
            else:
                yield from service.export_jsonl(session=session, identity=state.identity, flt=flt)

    media = "text/csv" if params.format == "csv" else "application/x-ndjson"
    name = f"{state.identity.hub_id}-audit.{params.format}"
    return StreamingResponse(
        lines(), media_type=media, headers={"Content-Disposition": f'attachment; filename="{name}"'}
    )


@checkpoints_router.post("/{node_id}/audit/checkpoints", status_code=201)
def receive_checkpoint(
    node_id: str, body: Signed, session: SessionDep, state: StateDep
) -> CheckpointRead:
    return checkpoints.receive_checkpoint(
        session=session,
        node_id=node_id,
        jws=body.jws,
        skew_seconds=state.settings.node_clock_skew_seconds,
    )
