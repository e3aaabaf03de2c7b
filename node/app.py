"""The node's FastAPI application."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from starlette.middleware.body_limit import RequestBodyLimitMiddleware

from contracts.v1 import ErrorResponse
from node import metrics
from node.api import agreements, audit, auth, budget, datasets, errors, info, queries
from node.api.deps import check_request_text
from node.audit import checkpoints
from node.db import engine_for
from node.settings import NodeSettings
from node.web import router as steward_web
from runtime import edge

# A multipart form around an uploaded file adds its field names and boundaries.
FORM_OVERHEAD_BYTES = 64 * 1024


def create_app(settings: NodeSettings) -> FastAPI:
    engine_for(settings.db_url)  # create tables up front, not on the first request
    checkpointer = checkpoints.enable(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if checkpointer is not None:
            checkpointer.publish_soon()  # what a stop or an unreachable hub left pending
        yield

    app = FastAPI(
        title="Sauti node",
        version="1",
        lifespan=lifespan,
        # Swagger UI and ReDoc load their code from a CDN, which no page here may do (and no
        # CSP here allows): the document itself is at /openapi.json for any OpenAPI viewer.
        docs_url=None,
        redoc_url=None,
        dependencies=[Depends(check_request_text)],
    )
    app.state.settings = settings
    errors.install(app)
    metrics.install(app, settings)
    # Refused before it is read (Content-Length) or once it passes the limit (chunked); the
    # routes included with a larger max_body_size (uploads) raise it for themselves. Inside
    # the edge, so every 413 becomes the JSON error with its code.
    app.add_middleware(RequestBodyLimitMiddleware, max_body_size=settings.body_max_bytes)
    app.add_middleware(edge.EdgeMiddleware)
    app.openapi = edge.with_errors(  # type: ignore[method-assign]
        app.openapi, error_schema=ErrorResponse.model_json_schema()
    )
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
