"""Where push deliveries and deadlines run: in the hub's own event loop, or on Celery.

`HUB_CELERY_BROKER_URL` unset (the embedded default, `sauti demo`): one asyncio task per
node per query in the hub process and a loop timer for the deadline. Set: one Celery task
per node per query and one deadline task (ETA), run by `sauti hub worker`.
"""

import asyncio
import logging
from collections.abc import Coroutine, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

import httpx
from celery import Celery  # type: ignore[import-untyped]
from sqlalchemy.orm import Session, sessionmaker

from hub.federation import fanout
from hub.federation.signals import Signals, query_key
from hub.queries import service as queries
from hub.settings import HubSettings

log = logging.getLogger("hub.federation")
CLOSE_GRACE_SECONDS = 10.0


class Dispatcher(Protocol):
    async def dispatch(
        self, *, query_id: str, push_nodes: Sequence[str], deadline: datetime
    ) -> None:
        """Start one delivery per push node and arrange completion at `deadline`."""

    async def close(self) -> None: ...


class InProcessDispatcher:
    """Deliveries as tasks on the hub's event loop; call `dispatch` from that loop.

    Answers go through one recorder task that writes whatever has arrived in one
    transaction (group commit): N nodes answering together cost a few commits, not N, and
    writers never meet at SQLite's lock (where they would sleep in coarse busy steps).
    """

    def __init__(
        self,
        *,
        client: httpx.AsyncClient,
        sessions: sessionmaker[Session],
        settings: HubSettings,
        signals: Signals,
    ) -> None:
        self._client = client
        self._sessions = sessions
        self._settings = settings
        self._signals = signals
        self._tasks: set[asyncio.Task[None]] = set()
        self._timers: set[asyncio.TimerHandle] = set()
        self._queue: asyncio.Queue[queries.Outcome] = asyncio.Queue()
        self._recorder: asyncio.Task[None] | None = None

    async def dispatch(
        self, *, query_id: str, push_nodes: Sequence[str], deadline: datetime
    ) -> None:
        loop = asyncio.get_running_loop()
        if self._recorder is None:
            self._recorder = asyncio.ensure_future(self._record_loop())
        if push_nodes:

            def load() -> list[fanout.PushCall]:
                with self._sessions() as session:
                    return fanout.load_push_calls(session=session, query_id=query_id)

            for call in await asyncio.to_thread(load):
                self._spawn(self._deliver(call))
        delay = max((deadline - datetime.now(UTC)).total_seconds(), 0)
        handle = loop.call_later(delay, lambda: self._spawn(self._finalize(query_id)))
        self._timers.add(handle)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, call: fanout.PushCall) -> None:
        try:
            result = await fanout.post_with_retries(
                client=self._client, call=call, settings=self._settings
            )
        except Exception:  # a delivery must never take the hub down; the deadline closes it
            log.exception("delivery to node %s for query %s failed", call.node_id, call.query_id)
            return
        await self._queue.put(fanout.to_outcome(call, result))

    async def _record_loop(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                await asyncio.to_thread(self._record, batch)
            except Exception:
                log.exception("recording %d node answers failed", len(batch))
            for item in batch:
                self._signals.notify(query_key(item.query_id))

    def _record(self, batch: list[queries.Outcome]) -> None:
        with self._sessions() as session:
            stored = queries.record_outcomes(session=session, outcomes=batch)
        for item, ok in zip(batch, stored, strict=True):
            if not ok:
                log.warning(
                    "late or duplicate answer from node %s for query %s dropped",
                    item.node_id,
                    item.query_id,
                )

    async def _finalize(self, query_id: str) -> None:
        def run() -> bool:
            with self._sessions() as session:
                return queries.finalize_due(session=session, query_id=query_id)

        try:
            if await asyncio.to_thread(run):
                self._signals.notify(query_key(query_id))
        except Exception:
            log.exception("completing query %s at its deadline failed", query_id)

    async def close(self) -> None:
        for handle in self._timers:
            handle.cancel()
        if self._tasks:
            # Let deliveries in flight record their outcome (each is bounded by the node
            # timeout): a cancelled one would leave its database thread running past shutdown.
            await asyncio.wait(list(self._tasks), timeout=CLOSE_GRACE_SECONDS)
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._recorder is not None:
            while not self._queue.empty():
                await asyncio.to_thread(self._record, [self._queue.get_nowait()])
            self._recorder.cancel()
            await asyncio.gather(self._recorder, return_exceptions=True)


class CeleryDispatcher:
    """One Celery task per node per query, and one deadline task, on the configured broker."""

    def __init__(self, *, app: Celery, settings: HubSettings) -> None:
        self._app = app
        self._queue = settings.celery_queue

    async def dispatch(
        self, *, query_id: str, push_nodes: Sequence[str], deadline: datetime
    ) -> None:
        # Publishing talks to the broker: off the event loop.
        await asyncio.to_thread(self._send, query_id, tuple(push_nodes), deadline)

    def _send(self, query_id: str, push_nodes: tuple[str, ...], deadline: datetime) -> None:
        for node_id in push_nodes:
            self._app.send_task(DELIVER_TASK, args=(query_id, node_id), queue=self._queue)
        self._app.send_task(FINALIZE_TASK, args=(query_id,), queue=self._queue, eta=deadline)

    async def close(self) -> None:
        return None


DELIVER_TASK = "sauti.hub.deliver"
FINALIZE_TASK = "sauti.hub.finalize"
