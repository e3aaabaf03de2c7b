"""Routes of analyst queries: submit (answers at once or after a short wait), read progress."""

import time
from functools import partial
from typing import Annotated, Any
from uuid import UUID

import anyio.to_thread
from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel

from contracts.v1 import QueryResult, QuerySpec, Signed, TaskBatch
from hub.deps import (
    CallerDep,
    CurrentUser,
    HubState,
    SessionDep,
    StateDep,
    checked_first,
)
from hub.exceptions import HubSetupError
from hub.home import rotation_headers
from hub.nodes import messages
from hub.queries import pull, run, service
from hub.queries.exceptions import TaskUnknown
from hub.queries.schemas import QuerySummary
from hub.queries.signals import node_key, query_key, wait_event

router = APIRouter(prefix="/v1/queries", tags=["queries"])

Wait = Annotated[
    float | None,
    Query(ge=0, le=600, description="Seconds to wait for completion (default: the hub's)."),
]


async def submit_query(
    spec: QuerySpec,
    caller: CallerDep,
    wait: Wait = None,
    ttl_seconds: Annotated[
        int | None,
        Query(ge=1, description="Deadline in seconds; the nodes' tasks expire with it."),
    ] = None,
) -> Response:
    """201 with the complete result, or 202 with progress if it is still running after `wait`.

    The body is the result's JSON as written when the query completed (serialised once, not
    validated and serialised again on the way out).

    The caller is checked (as `Analyst`) in the thread hop that prepares the query, first,
    not in one of its own; refusals keep their order (`checked_first`)."""
    state = caller.state
    if state.dispatcher is None:
        await anyio.to_thread.run_sync(caller.user, "analyst")
        raise HubSetupError("the hub's dispatcher is not running", code="hub_not_started")
    result = await run.submit_and_wait(
        sessions=state.sessions,
        dispatcher=state.dispatcher,
        signals=state.signals,
        settings=state.settings,
        identity=state.identity,
        key=state.key,
        user=partial(caller.user, "analyst"),
        spec=spec,
        ttl_seconds=ttl_seconds,
        wait_seconds=state.settings.query_wait_seconds if wait is None else wait,
        client=state.client,
    )
    return Response(
        service.result_body(result),
        status_code=202 if result.status == "running" else 201,
        media_type="application/json",
    )


router.add_api_route(
    "",
    submit_query,
    methods=["POST"],
    status_code=201,
    response_model=QueryResult,
    responses={202: {"model": QueryResult, "description": "still running: progress so far"}},
    route_class_override=checked_first("analyst"),
)


@router.get("")
def list_queries(user: CurrentUser, session: SessionDep) -> list[QuerySummary]:
    return service.list_queries(session=session, user=user)


async def get_query(query_id: UUID, caller: CallerDep, wait: Wait = None) -> QueryResult:
    """The result, or its progress (`status: running`, per-node `pending`); `wait` long-polls.

    The caller is checked (as `CurrentUser`) in the first read's thread hop, first."""
    state = caller.state
    return await run.view(
        sessions=state.sessions,
        signals=state.signals,
        settings=state.settings,
        query_id=query_id,
        user=caller.user,
        wait_seconds=wait or 0,
    )


router.add_api_route(
    "/{query_id}", get_query, methods=["GET"], route_class_override=checked_first()
)


# --- pull mode: node-facing, signed by the node's key (no API token) ------------------------

pull_router = APIRouter(tags=["federation"])
PULL_RECHECK_SECONDS = 1.0


class Answered(BaseModel):
    query_id: str
    status: str = "recorded"


@pull_router.post("/v1/federation/poll")
async def poll(request: Request, response: Response, state: StateDep) -> TaskBatch:
    """Long poll: answers as soon as the node has tasks, or after the poll's wait.

    While a hub key rotation's overlap lasts, the answer carries its announcement in a
    header, so a pull node learns the new key on its next poll.
    """
    signed = await messages.read_body(request, Signed)
    settings = state.settings
    response.headers.update(rotation_headers(settings.home))

    def accept() -> tuple[str, Any]:
        with state.sessions() as session:
            return pull.accept_poll(
                session=session, identity=state.identity, signed=signed, settings=settings
            )

    node_id, node_poll = await messages.node_call(request, accept)
    give_up = time.monotonic() + min(node_poll.wait_seconds, settings.pull_max_wait_seconds)

    def collect() -> TaskBatch:
        with state.sessions() as session:
            return pull.collect_tasks(
                session=session,
                node_id=node_id,
                max_tasks=node_poll.max_tasks,
                lease_seconds=settings.pull_lease_seconds,
            )

    with state.signals.listen(node_key(node_id)) as event:
        while True:
            batch = await anyio.to_thread.run_sync(collect)
            remaining = give_up - time.monotonic()
            if batch.tasks or remaining <= 0 or await request.is_disconnected():
                return batch
            await wait_event(event, min(PULL_RECHECK_SECONDS, remaining))


@pull_router.post("/v1/federation/releases", status_code=202)
async def post_release(request: Request, state: StateDep) -> Answered:
    signed = await messages.read_body(request, Signed)

    def check() -> service.Outcome:
        with state.sessions() as session:
            return pull.release_outcome(session=session, signed=signed)

    return await _record_answer(request, state, await messages.node_call(request, check))


@pull_router.post("/v1/federation/refusals", status_code=202)
async def post_refusal(request: Request, state: StateDep) -> Answered:
    signed = await messages.read_body(request, Signed)

    def check() -> service.Outcome:
        with state.sessions() as session:
            return pull.refusal_outcome(session=session, signed=signed)

    return await _record_answer(request, state, await messages.node_call(request, check))


async def _record_answer(request: Request, state: HubState, outcome: service.Outcome) -> Answered:
    """A pull node's checked answer, recorded in the process's next batch of answers (the
    push deliveries' group commit); a task closed meanwhile (a duplicate, or the deadline
    passed) is refused as unknown and stores nothing."""
    if state.recorder is not None:
        stored = await state.recorder.record_pull(outcome)
    else:  # outside the app's lifespan (no event loop task to batch with)

        def record() -> bool:
            with state.sessions() as session:
                (done,) = service.record_outcomes(session=session, outcomes=[outcome])
                return done

        stored = await anyio.to_thread.run_sync(record)
        state.signals.notify(query_key(outcome.query_id))
    if not stored:
        refusal = TaskUnknown()
        messages.log_refusal(request, refusal)
        raise refusal
    return Answered(query_id=outcome.query_id)
