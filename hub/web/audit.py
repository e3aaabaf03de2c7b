"""The auditor's pages: search the log, verify the chain, open a query's or an agreement's
record, export what a search found, reconcile with the nodes' exports.

Thin routes; view models come from `hub.web.audit_views`. Only auditors (and admins) pass,
as on the audit API.
"""

from collections.abc import Iterator
from typing import Annotated, Literal
from uuid import UUID

import anyio.to_thread
from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response, StreamingResponse
from starlette.datastructures import UploadFile

from hub.audit import service as audit
from hub.deps import SessionDep, StateDep
from hub.web import audit_views as views
from hub.web.deps import AuditorViewer, Form, Viewer, mark_web
from hub.web.templating import render

router = APIRouter(prefix="/audit", dependencies=[Depends(mark_web)], include_in_schema=False)


def _page(request: Request, viewer: Viewer, template: str, **context: object) -> Response:
    status = context.pop("status_code", 200)
    assert isinstance(status, int)
    return render(request, template, {"viewer": viewer, **context}, status_code=status)


def _params(request: Request) -> dict[str, str]:
    return {k: v for k, v in request.query_params.items() if k in views.SEARCH_FIELDS}


@router.get("")
def audit_page(
    request: Request, viewer: AuditorViewer, state: StateDep, session: SessionDep
) -> Response:
    search = views.search_view(session=session, params=_params(request))
    status = views.checkpoint_status(
        session=session, overdue_entries=state.settings.checkpoint_overdue_entries
    )
    return _page(
        request,
        viewer,
        "audit.html",
        search=search,
        checkpoint_status=status,
        status_code=422 if search.errors else 200,
    )


@router.get("/verify")
def verify_page(
    request: Request, viewer: AuditorViewer, state: StateDep, session: SessionDep
) -> Response:
    chain = views.verify_chain(
        session=session,
        identity=state.identity,
        overdue_entries=state.settings.checkpoint_overdue_entries,
    )
    return _page(request, viewer, "audit_verify.html", chain=chain)


@router.get("/export")
def export(
    request: Request,
    viewer: AuditorViewer,
    state: StateDep,
    session: SessionDep,
    fmt: Annotated[Literal["csv", "jsonl"], Query(alias="format")] = "csv",
) -> Response:
    """What the search found, every page of it, oldest first as in the log itself."""
    search = views.export_search(_params(request), session=session)
    flt = views.export_filter(search)
    audit.record_export(
        session=session, actor=f"user:{viewer.user.name}", fmt=fmt, flt=flt, search=search
    )

    def lines() -> Iterator[str]:
        # Its own session: the response streams after the route has returned.
        with state.sessions() as reader:
            if fmt == "csv":
                yield from audit.export_csv(session=reader, flt=flt, search=search)
            else:
                yield from audit.export_jsonl(
                    session=reader, identity=state.identity, flt=flt, search=search
                )

    media = "text/csv" if fmt == "csv" else "application/x-ndjson"
    name = f"{state.identity.hub_id}-audit.{fmt}"
    return StreamingResponse(
        lines(), media_type=media, headers={"Content-Disposition": f'attachment; filename="{name}"'}
    )


@router.get("/queries/{query_id}")
def query_record(
    request: Request, query_id: UUID, viewer: AuditorViewer, session: SessionDep
) -> Response:
    record = views.query_record(session=session, query_id=query_id, user=viewer.user)
    return _page(request, viewer, "audit_query.html", record=record)


@router.get("/agreements/{agreement_id}")
def agreement_record(
    request: Request,
    agreement_id: Annotated[str, Path(max_length=100)],
    viewer: AuditorViewer,
    session: SessionDep,
) -> Response:
    record = views.agreement_record(session=session, agreement_id=agreement_id, user=viewer.user)
    return _page(request, viewer, "audit_agreement.html", record=record)


@router.get("/reconcile")
def reconcile_form(request: Request, viewer: AuditorViewer) -> Response:
    return _page(request, viewer, "reconcile.html", view=None)


@router.post("/reconcile")
async def reconcile(
    request: Request, form: Form, viewer: AuditorViewer, state: StateDep
) -> Response:
    files = [f for f in form.getlist("exports") if isinstance(f, UploadFile) and f.filename]
    uploads = [(f.filename or "", await f.read()) for f in files]

    def work() -> Response:
        with state.sessions() as session:
            try:
                view = views.reconcile_uploads(
                    session=session,
                    identity=state.identity,
                    uploads=uploads,
                    overdue_entries=state.settings.checkpoint_overdue_entries,
                )
            except views.ReconcileRefused as exc:
                return _page(
                    request, viewer, "reconcile.html", view=None, refused=exc, status_code=422
                )
        return _page(request, viewer, "reconcile.html", view=view)

    return await anyio.to_thread.run_sync(work)
