"""The node's FastAPI application."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from node import metrics
from node.api import agreements as steward_agreements
from node.api import audit, errors, steward
from node.api.router import router
from node.audit import checkpoints
from node.auth.router import router as steward_auth_router
from node.datasets.router import router as datasets_router
from node.db import engine_for
from node.settings import NodeSettings
from node.web import router as steward_web


def create_app(settings: NodeSettings) -> FastAPI:
    engine_for(settings.db_url)  # create tables up front, not on the first request
    checkpointer = checkpoints.enable(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if checkpointer is not None:
            checkpointer.publish_soon()  # what a stop or an unreachable hub left pending
        yield

    app = FastAPI(title="Sauti node", version="1", lifespan=lifespan)
    app.state.settings = settings
    errors.install(app)
    metrics.install(app, settings)
    app.include_router(router)
    app.include_router(steward.router)
    app.include_router(datasets_router)
    app.include_router(steward_agreements.router)
    app.include_router(audit.router)
    app.include_router(steward_auth_router)
    app.include_router(steward_web.router)
    app.mount("/steward/static", steward_web.static_files, name="steward-static")
    return app
