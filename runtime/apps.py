"""What both FastAPI apps are built with: the app itself, and the HTTP edge around it."""

import gc
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

from fastapi import FastAPI
from fastapi.params import Depends
from starlette.middleware.body_limit import RequestBodyLimitMiddleware

from contracts.v1 import ErrorResponse
from runtime import edge


def new_app(
    *,
    title: str,
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]],
    dependencies: Sequence[Depends],
) -> FastAPI:
    return FastAPI(
        title=title,
        version="1",
        lifespan=lifespan,
        # Swagger UI and ReDoc load their code from a CDN, which no page here may do (and no
        # CSP here allows): the document itself is at /openapi.json for any OpenAPI viewer.
        docs_url=None,
        redoc_url=None,
        dependencies=dependencies,
    )


def install_edge(app: FastAPI, *, body_max_bytes: int) -> None:
    """The body limit, the edge middleware outside it, and every error answer in OpenAPI.

    Call after every other middleware is added, so these two are the outermost. A body is
    refused before it is read (Content-Length) or once it passes the limit (chunked); routes
    included with a larger max_body_size (uploads) raise it for themselves. Inside the edge,
    so every 413 becomes the JSON error with its code.
    """
    app.add_middleware(RequestBodyLimitMiddleware, max_body_size=body_max_bytes)
    app.add_middleware(edge.EdgeMiddleware)
    openapi: Callable[[], dict[str, Any]] = app.openapi
    app.openapi = edge.with_errors(  # type: ignore[method-assign]
        openapi, error_schema=ErrorResponse.model_json_schema()
    )


# A serving process's collection thresholds (Python's default: 700, 10, 10). A hub query
# to 1,000 nodes holds ~100,000 objects (requests, releases, outcomes) for its second or
# so: under the default thresholds they were scanned young, again in the middle
# generation, and set off two full collections per query, a quarter of the hub's CPU per
# node. About one young collection per such query lets most of them die by reference
# counting first (measured: 20,000 left 0.1 ms of collections per node, 100,000 half
# that); cycles still go, a little later, and a young collection walks at most this many.
GC_THRESHOLDS = (100_000, 10, 10)


def settle_heap() -> None:
    """Once a long-running process has built its app: move what start-up made (modules,
    settings, caches) out of the garbage collector's view, so the full collections that
    per-request objects set off do not walk it each time (gc.freeze), and collect less
    often (GC_THRESHOLDS). A serving process only, never in tests, which build and drop
    many apps."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
