"""Routes of the federation: node registry, enrollment, key rotation, pull tasks and answers.

Node-facing routes (enroll, keys, poll, releases, refusals) carry no API token: each body is
signed by the node's enrolled key (or, for enrollment, comes with a one-time token). Their
bodies are size-limited before parsing, and every refusal is logged without the body.
"""

import json
import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

import anyio.to_thread
from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from contracts.v1 import EnrollmentSubmission, KeyRotationSubmission, Signed, TaskBatch
from hub.deps import AdminOrSecretariat, CurrentUser, SessionDep, StateDep, refuse_text
from hub.exceptions import HubError, Invalid
from hub.federation import pull, service
from hub.federation.schemas import (
    EnrollmentTokenCreate,
    EnrollmentTokenIssued,
    EnrollmentTokenRead,
    NodeCreate,
    NodeKeyRead,
    NodeRead,
)
from hub.federation.signals import node_key, query_key, wait_event
from hub.home import rotation_headers
from runtime import edge
from runtime.edge import HTTP_CODES

log = logging.getLogger("hub.federation")
router = APIRouter(tags=["federation"])
M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")
PULL_RECHECK_SECONDS = 1.0


class Answered(BaseModel):
    query_id: str
    status: str = "recorded"


async def _read(request: Request, model: type[M]) -> M:
    """Parse strictly; the app's body limit (HUB_BODY_MAX_BYTES) bounds what is read."""
    try:
        data = json.loads(await request.body())
    except ValueError as exc:
        raise Invalid(f"the body is not a valid {model.__name__}") from exc
    refuse_text(edge.forbidden_in(data))
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise Invalid(f"the body is not a valid {model.__name__}") from exc


async def _node_call(request: Request, work: Callable[[], T]) -> T:
    """Run `work` in a thread; log any refusal with the route and the code, never the body."""
    try:
        return await anyio.to_thread.run_sync(work)
    except HubError as exc:
        _log_refusal(request, exc)
        raise


def _log_refusal(request: Request, exc: HubError) -> None:
    peer = request.client.host if request.client else "unknown"
    log.warning("refused %s from %s: %s", request.url.path, peer, exc.code)


async def _body(request: Request, model: type[M]) -> M:
    try:
        return await _read(request, model)
    except HubError as exc:
        _log_refusal(request, exc)
        raise
    except StarletteHTTPException as exc:  # the app's body limit
        _log_refusal(request, HubError("", code=HTTP_CODES.get(exc.status_code, "refused")))
        raise


# --- registry (API tokens) ----------------------------------------------------------------


@router.post("/v1/nodes", status_code=201)
def register_node(body: NodeCreate, user: AdminOrSecretariat, session: SessionDep) -> NodeRead:
    return service.register_node(session=session, actor=f"user:{user.name}", **body.model_dump())


@router.get("/v1/nodes")
def list_nodes(_user: CurrentUser, session: SessionDep) -> list[NodeRead]:
    return service.list_nodes(session=session)


@router.get("/v1/nodes/{node_id}/keys")
def key_history(node_id: str, _user: CurrentUser, session: SessionDep) -> list[NodeKeyRead]:
    """Every key the node ever had: what verifies the things it signed in the past."""
    return service.key_history(session=session, node_id=node_id)


@router.delete("/v1/nodes/{node_id}")
def remove_node(node_id: str, user: AdminOrSecretariat, session: SessionDep) -> NodeRead:
    return service.remove_node(session=session, node_id=node_id, actor=f"user:{user.name}")


@router.post("/v1/enrollment-tokens", status_code=201)
def create_enrollment_token(
    body: EnrollmentTokenCreate, user: AdminOrSecretariat, state: StateDep, session: SessionDep
) -> EnrollmentTokenIssued:
    return service.create_enrollment_token(
        session=session, identity=state.identity, actor=f"user:{user.name}", **body.model_dump()
    )


@router.get("/v1/enrollment-tokens")
def list_enrollment_tokens(
    _user: AdminOrSecretariat, session: SessionDep
) -> list[EnrollmentTokenRead]:
    return service.list_enrollment_tokens(session=session)


# --- node-facing (signed by the node) -------------------------------------------------------


@router.post("/v1/enroll", status_code=201)
async def enroll(request: Request, state: StateDep) -> Signed:
    submission = await _body(request, EnrollmentSubmission)

    def work() -> Signed:
        with state.sessions() as session:
            return service.enroll(
                session=session,
                identity=state.identity,
                key=state.key,
                submission=submission,
                skew_seconds=state.settings.node_clock_skew_seconds,
            )

    return await _node_call(request, work)


@router.post("/v1/nodes/{node_id}/keys")
async def rotate_key(node_id: str, request: Request, response: Response, state: StateDep) -> Signed:
    """The answer is a hub-signed `KeyRotationAccepted`: the node switches keys only on it.

    It carries a current hub key announcement too, so a node that has not yet heard of a
    hub key rotation can verify the answer (signed with the new hub key).
    """
    submission = await _body(request, KeyRotationSubmission)
    response.headers.update(rotation_headers(state.settings.home))

    def work() -> Signed:
        with state.sessions() as session:
            return service.rotate_key(
                session=session,
                node_id=node_id,
                identity=state.identity,
                key=state.key,
                submission=submission,
                overlap_seconds=state.settings.key_overlap_seconds,
                skew_seconds=state.settings.node_clock_skew_seconds,
            )

    return await _node_call(request, work)


@router.post("/v1/federation/poll")
async def poll(request: Request, response: Response, state: StateDep) -> TaskBatch:
    """Long poll: answers as soon as the node has tasks, or after the poll's wait.

    While a hub key rotation's overlap lasts, the answer carries its announcement in a
    header, so a pull node learns the new key on its next poll.
    """
    signed = await _body(request, Signed)
    settings = state.settings
    response.headers.update(rotation_headers(settings.home))

    def accept() -> tuple[str, Any]:
        with state.sessions() as session:
            return pull.accept_poll(
                session=session, identity=state.identity, signed=signed, settings=settings
            )

    node_id, node_poll = await _node_call(request, accept)
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


@router.post("/v1/federation/releases", status_code=202)
async def post_release(request: Request, state: StateDep) -> Answered:
    signed = await _body(request, Signed)

    def work() -> str:
        with state.sessions() as session:
            return pull.accept_release(session=session, signed=signed)

    query_id = await _node_call(request, work)
    state.signals.notify(query_key(query_id))
    return Answered(query_id=query_id)


@router.post("/v1/federation/refusals", status_code=202)
async def post_refusal(request: Request, state: StateDep) -> Answered:
    signed = await _body(request, Signed)

    def work() -> str:
        with state.sessions() as session:
            return pull.accept_refusal(session=session, signed=signed)

    query_id = await _node_call(request, work)
    state.signals.notify(query_key(query_id))
    return Answered(query_id=query_id)
