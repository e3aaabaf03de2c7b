"""Routes of analyst queries: submit (answers at once or after a short wait), read progress."""

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query, Response

from contracts.v1 import QueryResult, QuerySpec
from hub.deps import Analyst, CurrentUser, SessionDep, StateDep
from hub.exceptions import HubSetupError
from hub.queries import run, service
from hub.queries.schemas import QuerySummary

router = APIRouter(prefix="/v1/queries", tags=["queries"])

Wait = Annotated[
    float | None,
    Query(ge=0, le=600, description="Seconds to wait for completion (default: the hub's)."),
]


@router.post(
    "",
    status_code=201,
    responses={202: {"model": QueryResult, "description": "still running: progress so far"}},
)
async def submit_query(  # noqa: PLR0917 - FastAPI maps each parameter
    spec: QuerySpec,
    user: Analyst,
    state: StateDep,
    response: Response,
    wait: Wait = None,
    ttl_seconds: Annotated[
        int | None,
        Query(ge=1, description="Deadline in seconds; the nodes' tasks expire with it."),
    ] = None,
) -> QueryResult:
    """201 with the complete result, or 202 with progress if it is still running after `wait`."""
    if state.dispatcher is None:
        raise HubSetupError("the hub's dispatcher is not running", code="hub_not_started")
    query_id = await run.submit(
        sessions=state.sessions,
        dispatcher=state.dispatcher,
        signals=state.signals,
        settings=state.settings,
        identity=state.identity,
        key=state.key,
        user=user,
        spec=spec,
        ttl_seconds=ttl_seconds,
    )
    result = await run.wait_for(
        sessions=state.sessions,
        signals=state.signals,
        settings=state.settings,
        query_id=query_id,
        user=user,
        wait_seconds=state.settings.query_wait_seconds if wait is None else wait,
    )
    if result.status == "running":
        response.status_code = 202
    return result


@router.get("")
def list_queries(user: CurrentUser, session: SessionDep) -> list[QuerySummary]:
    return service.list_queries(session=session, user=user)


@router.get("/{query_id}")
async def get_query(
    query_id: UUID, user: CurrentUser, state: StateDep, wait: Wait = None
) -> QueryResult:
    """The result, or its progress (`status: running`, per-node `pending`); `wait` long-polls."""
    return await run.view(
        sessions=state.sessions,
        signals=state.signals,
        settings=state.settings,
        query_id=query_id,
        user=user,
        wait_seconds=wait or 0,
    )
