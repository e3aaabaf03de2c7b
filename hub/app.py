"""The hub's FastAPI application: state, one shared HTTP client for fan-out, routers."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
import httpx
from fastapi import Depends, FastAPI

from hub import metrics
from hub.agreements.router import router as agreements_router
from hub.assessments.router import router as assessments_router
from hub.audit.router import checkpoints_router as audit_checkpoints_router
from hub.audit.router import router as audit_router
from hub.auth.router import router as auth_router
from hub.db import init_db, make_engine
from hub.deps import HubState, check_request_text
from hub.errors import install_error_handlers
from hub.harmonisation.router import router as modules_router
from hub.home import load_identity, load_key
from hub.nodes.router import router as nodes_router
from hub.queries.dispatch import CeleryDispatcher, Dispatcher, InProcessDispatcher, Sweeper
from hub.queries.progress import ProgressListener
from hub.queries.recorder import Recorder
from hub.queries.router import pull_router
from hub.queries.router import router as queries_router
from hub.queries.transport import node_client
from hub.settings import HubSettings
from hub.web.assessments import router as assessment_pages_router
from hub.web.router import install as install_web
from runtime import apps


def create_app(
    settings: HubSettings, *, transport: httpx.AsyncBaseTransport | None = None
) -> FastAPI:
    """`transport` lets tests route node calls in process (e.g. to ASGI node apps)."""
    engine = make_engine(settings.effective_database_url)
    state = HubState(
        settings=settings,
        identity=load_identity(settings.home),
        key=load_key(settings.home),
        sessions=init_db(engine),
        engine=engine,
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        async with node_client(
            timeout=settings.node_timeout_seconds,
            transport=transport,
            concurrency=settings.node_concurrency,
        ) as client:
            state.client = client
            state.recorder = Recorder(sessions=state.sessions, signals=state.signals)
            state.dispatcher = make_dispatcher(settings, client=client, state=state)
            sweeper = Sweeper(
                sessions=state.sessions,
                dispatcher=state.dispatcher,
                signals=state.signals,
                after=settings.redispatch_seconds,
            )
            sweeper.start()
            listener = None
            if ProgressListener.wanted(engine):
                listener = ProgressListener(engine=engine, signals=state.signals)
                listener.start()
            try:
                yield
            finally:
                if listener is not None:
                    await anyio.to_thread.run_sync(listener.close)
                await sweeper.close()
                await state.dispatcher.close()
                await state.recorder.close()
                state.dispatcher = None
                state.recorder = None
                state.client = None
        engine.dispose()

    app = apps.new_app(
        title="Sauti hub", lifespan=lifespan, dependencies=[Depends(check_request_text)]
    )
    app.state.hub = state
    install_error_handlers(app)
    metrics.install(app, settings, state.sessions)
    apps.install_edge(app, body_max_bytes=settings.body_max_bytes)
    # The query routes first: a request is matched against the routes in order (twice, in
    # FastAPI's included routers: once to pick the router, once inside it), and these are
    # the ones asked on every query (analysts' submits and reads, pull nodes' polls and
    # answers). No other route's path overlaps theirs, so the order changes no match.
    app.include_router(queries_router)
    app.include_router(pull_router)
    app.include_router(nodes_router)
    app.include_router(agreements_router)
    app.include_router(audit_router)
    app.include_router(audit_checkpoints_router)
    app.include_router(auth_router)
    install_web(app)
    app.include_router(modules_router)
    app.include_router(assessments_router)
    app.include_router(assessment_pages_router)

    @app.get("/v1/health", tags=["meta"])
    def health() -> dict[str, str]:
        return {"status": "ok", "hub_id": state.identity.hub_id}

    return app


def app_from_environment() -> FastAPI:
    """The app of one of `sauti hub serve --processes N`'s children: settings from HUB_HOME
    and the rest of the environment, as the parent read them."""
    app = create_app(HubSettings())  # home: HUB_HOME
    apps.settle_heap()
    return app


def make_dispatcher(
    settings: HubSettings, *, client: httpx.AsyncClient, state: HubState
) -> Dispatcher:
    """Celery when a broker is configured; else deliveries run in this process."""
    if settings.celery_enabled:
        from hub.queries.worker import create_celery  # noqa: PLC0415 - only with a broker

        return CeleryDispatcher(
            app=create_celery(settings),
            settings=settings,
            sessions=state.sessions,
            signals=state.signals,
        )
    return InProcessDispatcher(
        client=client,
        sessions=state.sessions,
        settings=settings,
        signals=state.signals,
        recorder=state.recorder,
    )
