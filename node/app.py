"""The node's FastAPI application."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI

from node import metrics
from node.agreements import outbox
from node.api import agreements, audit, auth, budget, datasets, errors, info, queries
from node.api.deps import check_request_text
from node.audit import checkpoints
from node.db import engine_for
from node.settings import NodeSettings
from node.web import router as steward_web
from runtime import apps

# A multipart form around an uploaded file adds its field names and boundaries.
FORM_OVERHEAD_BYTES = 64 * 1024


def create_app(settings: NodeSettings) -> FastAPI:
    engine_for(settings.db_url)  # create tables up front, not on the first request
    checkpointer = checkpoints.enable(settings)

    retrier = outbox.Retrier(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if checkpointer is not None:
            checkpointer.publish_soon()  # what a stop or an unreachable hub left pending
        retrier.start()  # signatures and notices the hub has yet to confirm
        try:
            yield
        finally:
            retrier.stop()

    app = apps.new_app(
        title="Sauti node", lifespan=lifespan, dependencies=[Depends(check_request_text)]
    )
    app.state.settings = settings
    errors.install(app)
    metrics.install(app, settings)
    apps.install_edge(app, body_max_bytes=settings.body_max_bytes)
    upload_limit = settings.import_max_bytes + FORM_OVERHEAD_BYTES
    app.include_router(info.router)
    app.include_router(queries.router)
    app.include_router(budget.router)
    app.include_router(datasets.router)
    app.include_router(datasets.uploads, max_body_size=upload_limit)
    app.include_router(agreements.router)
    app.include_router(audit.router)
    app.include_router(auth.router)
    app.include_router(steward_web.router)
    app.include_router(steward_web.upload_routes, max_body_size=upload_limit)
    app.mount("/steward/static", steward_web.static_files, name="steward-static")
    return app
