"""The analyst's pages: the query builder, a query's progress and result, its downloads.

One form holds everything, the agreement too: changing the agreement (or dataset, measure,
column, a filter's column) reloads the options from that agreement and the nodes'
contracts (htmx posts the form to /analyst/options; without script the "Update the
options" button does the same). The form says which agreement version and dataset its
options were built for; a run whose agreement no longer matches them is refused, shown
the new options, and never runs under the old agreement.
"""

from uuid import UUID

import anyio.to_thread
from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response

from contracts.v1 import QueryResult
from hub.deps import StateDep
from hub.exceptions import HubError, HubSetupError
from hub.nodes import contracts
from hub.nodes import service as federation
from hub.queries import run
from hub.queries.exceptions import ContractViolation
from hub.web import builder, downloads, results
from hub.web.builder import FieldError, FormErrors
from hub.web.deps import AnalystViewer, Form, Viewer, mark_web
from hub.web.exceptions import QueryStillRunning
from hub.web.templating import render, request_language

router = APIRouter(dependencies=[Depends(mark_web)], include_in_schema=False)
# While nodes are still answering, the result page asks for progress at once and the hub
# holds that request until the query completes or this long has passed (a long poll): the
# result shows the moment it is ready, and a running query costs one request a second. The
# page also asks every POLL_SECONDS (htmx drops a tick while a request is out), so a failed
# request is retried.
POLL_SECONDS = 1
# Which builder field a hub refusal belongs next to (the rest show above the form).
FIELD_OF_CODE = {
    "measure_not_allowed": "measure",
    "column_not_allowed": "column",
    "dim_not_allowed": "group_by_1",
    "too_many_dims": "group_by_1",
    "cost_over_cap": "rho",
    "rho_below_floor": "rho",
    "grid_not_allowed": "quantiles",
    "dataset_not_allowed": "dataset",
    "no_nodes_selected": "filter_levels_1",
}


def _builder_page(
    request: Request,
    viewer: Viewer,
    state: StateDep,
    form: object,
    *,
    errors: dict[str, FieldError] | None = None,
    status: int = 200,
) -> Response:
    lang = request_language(request)
    with state.sessions() as session:
        built = builder.build(
            session=session, user=viewer.user, lang=lang, form=form, errors=errors
        )
        recent = results.recent_queries(session=session, user=viewer.user, lang=lang)
    return render(
        request,
        "analyst.html",
        {"viewer": viewer, "form": built, "recent": recent},
        status_code=status,
    )


async def _fetch_contracts(state: StateDep, viewer: Viewer) -> None:
    """Fetch the contracts the hub lacks for the agreements this analyst may use, so the
    options come from them (each node at most once per new contract version)."""

    def wanted() -> list[tuple[tuple[str, ...], str, int]]:
        with state.sessions() as session:
            needs = builder.contract_needs(session=session, user=viewer.user)
            session.rollback()
            return needs

    for node_ids, dataset, version in await anyio.to_thread.run_sync(wanted):
        await contracts.refresh(
            sessions=state.sessions,
            client=state.client,
            node_ids=node_ids,
            dataset=dataset,
            version=version,
            timeout=min(state.settings.node_timeout_seconds, 5.0),
            skew_seconds=state.settings.node_clock_skew_seconds,
        )


@router.get("/analyst")
async def analyst_page(request: Request, viewer: AnalystViewer, state: StateDep) -> Response:
    params = dict(request.query_params)
    await _fetch_contracts(state, viewer)
    return await anyio.to_thread.run_sync(lambda: _builder_page(request, viewer, state, params))


@router.post("/analyst/options")
async def analyst_options(
    request: Request, form: Form, viewer: AnalystViewer, state: StateDep
) -> Response:
    """The builder again for what the form now names (nothing runs)."""
    await _fetch_contracts(state, viewer)
    return await anyio.to_thread.run_sync(lambda: _builder_page(request, viewer, state, form))


@router.post("/analyst/queries")
async def submit_query(
    request: Request, form: Form, viewer: AnalystViewer, state: StateDep
) -> Response:
    def again(errors: dict[str, FieldError], status: int) -> Response:
        return _builder_page(request, viewer, state, form, errors=errors, status=status)

    built = await anyio.to_thread.run_sync(lambda: _built(request, viewer, state, form))
    if built.options_for != form.get("options_for"):
        # The agreement (or dataset) changed after the options were shown: never run it.
        return await anyio.to_thread.run_sync(
            again, {"agreement_id": FieldError("agreement_changed")}, 409
        )
    try:
        spec = builder.spec_from_form(form)
    except FormErrors as exc:
        return await anyio.to_thread.run_sync(again, exc.errors, 422)
    if state.dispatcher is None:
        raise HubSetupError("the hub's dispatcher is not running", code="hub_not_started")
    try:
        query_id = await run.submit(
            sessions=state.sessions,
            dispatcher=state.dispatcher,
            signals=state.signals,
            settings=state.settings,
            identity=state.identity,
            key=state.key,
            user=viewer.user,
            spec=spec,
            ttl_seconds=None,
            client=state.client,
        )
    except ContractViolation as exc:
        error = FieldError(exc.code, value=exc.value, allowed=exc.allowed)
        return await anyio.to_thread.run_sync(again, {exc.field: error}, exc.status_code)
    except HubError as exc:
        if exc.status_code >= 500:
            raise
        field = FIELD_OF_CODE.get(exc.code, "form")
        error = FieldError(exc.code, detail=exc.message)
        return await anyio.to_thread.run_sync(again, {field: error}, exc.status_code)
    return RedirectResponse(f"/analyst/queries/{query_id}", status_code=303)


def _built(request: Request, viewer: Viewer, state: StateDep, form: object) -> builder.Builder:
    with state.sessions() as session:
        return builder.build(
            session=session, user=viewer.user, lang=request_language(request), form=form
        )


async def _result(
    state: StateDep, viewer: Viewer, query_id: UUID, *, wait_seconds: float = 0
) -> QueryResult:
    return await run.view(
        sessions=state.sessions,
        signals=state.signals,
        settings=state.settings,
        query_id=query_id,
        user=viewer.user,
        wait_seconds=wait_seconds,
    )


async def _view(
    request: Request, state: StateDep, viewer: Viewer, query_id: UUID, *, wait_seconds: float = 0
) -> results.ResultView:
    result = await _result(state, viewer, query_id, wait_seconds=wait_seconds)
    lang = request_language(request)

    def build() -> results.ResultView:
        with state.sessions() as session:
            held = results.result_contracts(session=session, result=result)
            names = {n.node_id: n.name for n in federation.list_nodes(session=session)}
            refusal = (
                results.sdmx_refusal(session=session, result=result, user=viewer.user)
                if result.status != "running"
                else None
            )
        return results.result_view(
            result=result, lang=lang, contracts=held, node_names=names, sdmx_refusal=refusal
        )

    return await anyio.to_thread.run_sync(build)


@router.get("/analyst/queries/{query_id}")
async def query_page(
    request: Request, query_id: UUID, viewer: AnalystViewer, state: StateDep
) -> Response:
    view = await _view(request, state, viewer, query_id)
    return render(
        request,
        "query.html",
        {"viewer": viewer, "view": view},
    )


@router.get("/analyst/queries/{query_id}/progress")
async def query_progress(
    request: Request, query_id: UUID, viewer: AnalystViewer, state: StateDep
) -> Response:
    """The status and result fragment, once the query completes or POLL_SECONDS have passed;
    it asks again by itself while the query runs."""
    view = await _view(request, state, viewer, query_id, wait_seconds=POLL_SECONDS)
    return render(
        request,
        "_result.html",
        {"viewer": viewer, "view": view},
    )


async def _complete(state: StateDep, viewer: Viewer, query_id: UUID) -> QueryResult:
    result = await _result(state, viewer, query_id)
    if result.status == "running":
        raise QueryStillRunning()
    return result


def _attachment(content: bytes, media_type: str, name: str) -> Response:
    return Response(
        content,
        media_type=media_type,
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@router.get("/analyst/queries/{query_id}/result.csv")
async def download_csv(query_id: UUID, viewer: AnalystViewer, state: StateDep) -> Response:
    result = await _complete(state, viewer, query_id)
    return _attachment(
        downloads.to_csv(result), downloads.CSV_MEDIA_TYPE, downloads.filename(result, "csv")
    )


@router.get("/analyst/queries/{query_id}/result.xlsx")
async def download_xlsx(query_id: UUID, viewer: AnalystViewer, state: StateDep) -> Response:
    result = await _complete(state, viewer, query_id)
    content = await anyio.to_thread.run_sync(downloads.to_xlsx, result)
    return _attachment(content, downloads.XLSX_MEDIA_TYPE, downloads.filename(result, "xlsx"))


@router.get("/analyst/queries/{query_id}/result.sdmx.csv")
async def download_sdmx(query_id: UUID, viewer: AnalystViewer, state: StateDep) -> Response:
    result = await _complete(state, viewer, query_id)

    def build() -> str:
        with state.sessions() as session:
            return results.sdmx_csv(session=session, result=result, user=viewer.user)

    text = await anyio.to_thread.run_sync(build)
    return _attachment(
        text.encode("utf-8"), downloads.CSV_MEDIA_TYPE, downloads.filename(result, "sdmx.csv")
    )
