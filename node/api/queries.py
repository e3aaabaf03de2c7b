"""The routes the hub calls: /v1/queries (push mode) and the secure aggregation phases.

A push query is counted and timed here (`node.metrics.observing_query`), around the
transport-agnostic handler that the pull loop (node/sync) calls the same way."""

import json
from typing import Annotated

from fastapi import APIRouter, Header, Response
from starlette.concurrency import run_in_threadpool

from contracts.v1 import OfferAnswer, Signed
from contracts.v1.federation import HUB_KEY_ROTATION_HEADER
from node import metrics
from node.api.deps import SettingsDep
from node.queries import secure
from node.queries.service import handle_query
from node.settings import NodeSettings
from node.sync.service import learn_hub_key

router = APIRouter(prefix="/v1")


@router.post("/queries", response_model=Signed)
async def query(
    body: Signed,
    settings: SettingsDep,
    hub_key_rotation: Annotated[str | None, Header(alias=HUB_KEY_ROTATION_HEADER)] = None,
) -> Response:
    # Blocking work (DB, polars, OpenDP) runs in the thread pool, off the event loop.
    if hub_key_rotation is not None:
        # The hub announces a new key with the first request it signs with it.
        await run_in_threadpool(learn_hub_key, home=settings.home, announced=hub_key_rotation)
    return await run_in_threadpool(_answer, settings, body)


def _answer(settings: NodeSettings, signed: Signed) -> Response:
    with metrics.observing_query():
        answer = handle_query(settings=settings, signed=signed, on_verified=metrics.hub_heard)
    # The `Signed` document as its bytes: the signed release is sent as it was stored, not
    # validated and serialised again on the way out.
    return Response(
        content=b'{"jws":' + json.dumps(answer.jws).encode() + b"}",
        media_type="application/json",
    )


@router.post("/secure/offers", response_model=OfferAnswer, tags=["secure aggregation"])
async def secure_offer(
    body: Signed,
    settings: SettingsDep,
    hub_key_rotation: Annotated[str | None, Header(alias=HUB_KEY_ROTATION_HEADER)] = None,
) -> OfferAnswer:
    """Phase 1 of secure aggregation: a fresh key for one attempt (docs/privacy.md)."""
    if hub_key_rotation is not None:  # as on /v1/queries: secure-only nodes learn it too
        await run_in_threadpool(learn_hub_key, home=settings.home, announced=hub_key_rotation)
    return await run_in_threadpool(secure.handle_invite, settings=settings, signed=body)


@router.post("/secure/contributions", response_model=Signed, tags=["secure aggregation"])
async def secure_contribution(
    body: Signed,
    settings: SettingsDep,
    hub_key_rotation: Annotated[str | None, Header(alias=HUB_KEY_ROTATION_HEADER)] = None,
) -> Signed:
    """Phase 2: this node's masked, partly noised vector for a fixed roster."""
    if hub_key_rotation is not None:
        await run_in_threadpool(learn_hub_key, home=settings.home, announced=hub_key_rotation)
    return await run_in_threadpool(secure.handle_roster, settings=settings, signed=body)
