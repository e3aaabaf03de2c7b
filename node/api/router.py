"""Node HTTP routes: /v1/health, /v1/info, /v1/queries and the secure aggregation phases."""

from typing import Annotated

from fastapi import APIRouter, Header
from sqlalchemy import text
from starlette.concurrency import run_in_threadpool

from contracts.v1 import NodeInfo, OfferAnswer, Signed
from contracts.v1.federation import HUB_KEY_ROTATION_HEADER
from node import metrics
from node.api.deps import SettingsDep
from node.datasets import service as datasets
from node.db import transaction
from node.home import load_identity
from node.queries import secure
from node.queries.service import handle_query
from node.settings import NodeSettings
from node.sync.service import learn_hub_key

router = APIRouter(prefix="/v1")


@router.get("/health", tags=["meta"])
def health(settings: SettingsDep) -> dict[str, str]:
    """Liveness for containers and monitors: the home loads and the database answers."""
    identity = load_identity(settings.home)
    with transaction(settings.db_url) as session:
        session.execute(text("SELECT 1"))
    return {"status": "ok", "node_id": identity.node_id}


@router.get("/info", response_model=NodeInfo)
def info(settings: SettingsDep) -> NodeInfo:
    identity = load_identity(settings.home)
    return NodeInfo(
        node_id=identity.node_id,
        name=identity.name,
        country=identity.country,
        public_jwk=identity.public_jwk,
        kid=identity.kid,
        datasets=tuple(datasets.list_datasets(home=settings.home)),
    )


@router.post("/queries", response_model=Signed)
async def query(
    body: Signed,
    settings: SettingsDep,
    hub_key_rotation: Annotated[str | None, Header(alias=HUB_KEY_ROTATION_HEADER)] = None,
) -> Signed:
    # Blocking work (DB, polars, OpenDP) runs in the thread pool, off the event loop.
    if hub_key_rotation is not None:
        # The hub announces a new key with the first request it signs with it.
        await run_in_threadpool(learn_hub_key, home=settings.home, announced=hub_key_rotation)
    return await run_in_threadpool(_answer, settings, body)


def _answer(settings: NodeSettings, signed: Signed) -> Signed:
    with metrics.observing_query():
        return handle_query(settings=settings, signed=signed, on_verified=metrics.hub_heard)


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
