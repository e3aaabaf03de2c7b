"""Reading what a node sends the hub: a signed body parsed strictly, work done off the
event loop, and every refusal logged with the route and the code, never the body.

Node-facing routes (enroll, keys, contracts, poll, releases, refusals) carry no API token:
each body is signed by the node's enrolled key (or, for enrollment, comes with a one-time
token).
"""

import json
import logging
from collections.abc import Callable
from typing import TypeVar

import anyio.to_thread
from fastapi import Request
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from hub.deps import refuse_text
from hub.exceptions import HubError, Invalid
from runtime import edge
from runtime.edge import HTTP_CODES

log = logging.getLogger("hub.federation")
M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")


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


async def node_call(request: Request, work: Callable[[], T]) -> T:
    """Run `work` in a thread; log any refusal with the route and the code, never the body."""
    try:
        return await anyio.to_thread.run_sync(work)
    except HubError as exc:
        log_refusal(request, exc)
        raise


def log_refusal(request: Request, exc: HubError) -> None:
    peer = request.client.host if request.client else "unknown"
    log.warning("refused %s from %s: %s", request.url.path, peer, exc.code)


async def read_body(request: Request, model: type[M]) -> M:
    try:
        return await _read(request, model)
    except HubError as exc:
        log_refusal(request, exc)
        raise
    except StarletteHTTPException as exc:  # the app's body limit
        log_refusal(request, HubError("", code=HTTP_CODES.get(exc.status_code, "refused")))
        raise
