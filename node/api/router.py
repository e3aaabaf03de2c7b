"""Node HTTP routes: /v1/info and /v1/queries."""

from fastapi import APIRouter, BackgroundTasks
from starlette.concurrency import run_in_threadpool

from contracts.v1 import NodeInfo, Signed
from node.api.deps import SettingsDep
from node.audit import service as audit
from node.datasets import service as datasets
from node.home import load_identity
from node.queries import service as queries

router = APIRouter(prefix="/v1")


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
async def query(body: Signed, settings: SettingsDep, background: BackgroundTasks) -> Signed:
    # Blocking work (DB, polars, OpenDP) runs in the thread pool, off the event loop.
    # Audit checkpoints are signed and published after the response, off the query path.
    background.add_task(audit.maybe_checkpoint, home=settings.home, settings=settings)
    return await run_in_threadpool(queries.handle_query, settings=settings, signed=body)
