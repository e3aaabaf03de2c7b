"""Routes of analyst queries."""

from uuid import UUID

from fastapi import APIRouter

from contracts.v1 import QueryResult, QuerySpec
from hub.deps import Analyst, CurrentUser, SessionDep, StateDep
from hub.exceptions import HubSetupError
from hub.queries import service
from hub.queries.schemas import QuerySummary

router = APIRouter(prefix="/v1/queries", tags=["queries"])


@router.post("", status_code=201)
async def submit_query(spec: QuerySpec, user: Analyst, state: StateDep) -> QueryResult:
    if state.client is None:
        raise HubSetupError("the hub's HTTP client is not running", code="hub_not_started")
    return await service.run_query(
        sessions=state.sessions,
        client=state.client,
        settings=state.settings,
        identity=state.identity,
        key=state.key,
        user=user,
        spec=spec,
    )


@router.get("")
def list_queries(user: CurrentUser, session: SessionDep) -> list[QuerySummary]:
    return service.list_queries(session=session, user=user)


@router.get("/{query_id}")
def get_query(query_id: UUID, user: CurrentUser, session: SessionDep) -> QueryResult:
    return service.get_query(session=session, query_id=query_id, user=user)
