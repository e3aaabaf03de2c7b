"""The hub's Celery app: Redis broker and result backend from HubSettings, its tasks.

`sauti.hub.deliver_many(query_id, node_ids)` pushes each of up to `DELIVERY_BATCH` nodes its
request, each delivery on its own (one message per query, or per batch of a large one);
`sauti.hub.deliver(query_id, node_id)` pushes one node (kept for messages queued by older
hubs); `sauti.hub.secure(query_id)` runs a secure aggregation query;
`sauti.hub.finalize(query_id)` completes a query at its deadline (kept for messages
queued by older hubs: the hub now arms deadlines itself). All are idempotent: a task sent
again finds the node's task already closed, or resends the same signed request, which the
node answers from its stored release.

Redis is a transport, not the record: the hub's database is. Redis acknowledgement emulation
is off (`ack_emulation=False`): a message is taken off the queue when a worker receives it,
and what a crashed worker or a restarted Redis loses, the hub's sweeper sends again from the
database (`HUB_REDISPATCH_SECONDS`). With it on, a Redis restart under unacknowledged
messages kills the worker (kombu 5.7 restores them on a dead connection, unguarded) and ETA
messages come back every visibility timeout.

Run it with `sauti hub worker` (solo or threads pool: polars under prefork can deadlock).
Each worker process keeps one event loop in a thread with one shared `httpx.AsyncClient`,
and one `Recorder` and one `CallLoader` on it: the answers its deliveries bring are written
together (group commit), so its threads never queue on a query row or the audit head one
answer at a time, and the deliveries of one query, received together, are read together.
"""

import asyncio
import logging
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

import httpx
from celery import Celery  # type: ignore[import-untyped]
from sqlalchemy.orm import Session, sessionmaker

from hub.db import init_db, make_engine
from hub.queries import push, secure
from hub.queries import service as queries
from hub.queries.batching import CallLoader
from hub.queries.dispatch import DELIVER_MANY_TASK, DELIVER_TASK, FINALIZE_TASK, SECURE_TASK
from hub.queries.recorder import Recorder
from hub.queries.transport import node_client
from hub.settings import HubSettings

T = TypeVar("T")
log = logging.getLogger("hub.federation")


def _name(exc: BaseException) -> str:
    return type(exc).__name__


class WorkerRuntime:
    """Per-process resources, created on first use (after the pool has started)."""

    def __init__(self, settings: HubSettings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: httpx.AsyncClient | None = None
        self._sessions: sessionmaker[Session] | None = None
        self._recorder: Recorder | None = None
        self._loader: CallLoader | None = None

    @property
    def sessions(self) -> sessionmaker[Session]:
        with self._lock:
            if self._sessions is None:
                self._sessions = init_db(make_engine(self.settings.effective_database_url))
            return self._sessions

    def _start(self) -> tuple[asyncio.AbstractEventLoop, httpx.AsyncClient]:
        with self._lock:
            if self._loop is None or self._client is None:
                loop = asyncio.new_event_loop()
                threading.Thread(
                    target=loop.run_forever, name="hub-worker-loop", daemon=True
                ).start()

                async def make() -> httpx.AsyncClient:
                    return node_client(
                        timeout=self.settings.node_timeout_seconds,
                        concurrency=self.settings.node_concurrency,
                    )

                self._client = asyncio.run_coroutine_threadsafe(make(), loop).result()
                self._loop = loop
            return self._loop, self._client

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        loop, _ = self._start()
        return asyncio.run_coroutine_threadsafe(coro, loop).result()

    @property
    def client(self) -> httpx.AsyncClient:
        return self._start()[1]

    @property
    def recorder(self) -> Recorder:
        """The process's one writer of node answers (group commit: `hub.queries.recorder`)."""
        sessions = self.sessions
        with self._lock:
            if self._recorder is None:
                self._recorder = Recorder(sessions=sessions)
            return self._recorder

    @property
    def loader(self) -> CallLoader:
        """The process's reader of deliveries to start (one transaction per group)."""
        sessions = self.sessions
        with self._lock:
            if self._loader is None:
                self._loader = CallLoader(sessions=sessions)
            return self._loader


def create_celery(settings: HubSettings) -> Celery:
    if settings.celery_broker_url is None:
        raise ValueError("HUB_CELERY_BROKER_URL is not set")
    app = Celery(
        "sauti-hub",
        broker=settings.celery_broker_url,
        backend=settings.celery_result_backend or settings.celery_broker_url,
    )
    transport: dict[str, Any] = {"ack_emulation": False}
    if settings.celery_key_prefix:
        transport["global_keyprefix"] = settings.celery_key_prefix
    app.conf.update(
        task_default_queue=settings.celery_queue,
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        result_expires=3600,
        worker_prefetch_multiplier=1,
        # The database is the record of every task's outcome: nothing reads Celery results,
        # so a task never fails for want of a result backend (e.g. while Redis restarts).
        task_ignore_result=True,
        broker_connection_retry_on_startup=True,
        # Reconnect to a restarted broker for as long as it takes; what the broker lost is
        # sent again by the hub's sweeper (`hub.queries.dispatch.Sweeper`).
        broker_connection_max_retries=None,
        # Tasks ack on receipt (see above), so this cancels nothing: a delivery in flight when
        # the broker goes away finishes and records its outcome. (Set to Celery 6's default.)
        worker_cancel_long_running_tasks_on_connection_loss=True,
        broker_transport_options=transport,
        worker_hijack_root_logger=False,
    )
    runtime = WorkerRuntime(settings)

    # `shared=False`: the tasks are this app's alone (a second app in one process, as in the
    # tests, gets its own, bound to its own settings).
    # Every task catches what it did not expect: a poisoned task is recorded (or left to the
    # sweeper and the deadline), logged by type only, and the worker takes the next one.
    # Raising would only have Celery log a traceback: nothing retries these tasks but the
    # sweeper, which reads the database.

    @app.task(name=DELIVER_TASK, shared=False)  # type: ignore[untyped-decorator]
    def deliver(query_id: str, node_id: str) -> bool:
        try:
            return runtime.run(
                push.deliver(
                    client=runtime.client,
                    sessions=runtime.sessions,
                    settings=settings,
                    query_id=query_id,
                    node_id=node_id,
                    load=runtime.loader.load,
                    record=runtime.recorder.record,
                )
            )
        except Exception as exc:
            log.error("task %s for query %s failed (%s)", DELIVER_TASK, query_id, _name(exc))
            return False

    @app.task(name=DELIVER_MANY_TASK, shared=False)  # type: ignore[untyped-decorator]
    def deliver_many(query_id: str, node_ids: list[str]) -> int:
        """Each node's delivery on its own (a slow node holds up no other); how many were
        stored. Returns once every outcome is recorded (or left to the sweeper)."""

        async def each() -> list[bool]:
            return await asyncio.gather(
                *(
                    push.deliver(
                        client=runtime.client,
                        sessions=runtime.sessions,
                        settings=settings,
                        query_id=query_id,
                        node_id=node_id,
                        load=runtime.loader.load,
                        record=runtime.recorder.record,
                    )
                    for node_id in node_ids
                )
            )

        try:
            return sum(runtime.run(each()))
        except Exception as exc:
            log.error("task %s for query %s failed (%s)", DELIVER_MANY_TASK, query_id, _name(exc))
            return 0

    @app.task(name=SECURE_TASK, shared=False)  # type: ignore[untyped-decorator]
    def secure_query(query_id: str) -> None:
        try:
            runtime.run(
                secure.run(
                    client=runtime.client,
                    sessions=runtime.sessions,
                    settings=settings,
                    query_id=query_id,
                )
            )
        except Exception as exc:
            log.error("task %s for query %s failed (%s)", SECURE_TASK, query_id, _name(exc))
            secure.settle_failed(runtime.sessions, query_id)

    @app.task(name=FINALIZE_TASK, shared=False)  # type: ignore[untyped-decorator]
    def finalize(query_id: str) -> bool:
        try:
            with runtime.sessions() as session:
                return queries.finalize_due(session=session, query_id=query_id)
        except Exception as exc:  # the hub's sweeper completes it later
            log.error("task %s for query %s failed (%s)", FINALIZE_TASK, query_id, _name(exc))
            return False

    return app
