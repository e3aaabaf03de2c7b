"""Where push deliveries and deadlines run: in the hub's own event loop, or on Celery.

`HUB_CELERY_BROKER_URL` unset (the embedded default, `sauti demo`): one asyncio task per
node per query in the hub process and a loop timer for the deadline. Set: one Celery task
per node per query and one deadline task (ETA), run by `sauti hub worker`.

Either way a `Sweeper` in the hub process sends again what was lost (a broker restart
without persistence, a failed publish, a hub restart with deliveries in flight) and completes
queries whose deadline passed; the database, not the broker, is the record of what is open.
"""

import asyncio
import collections
import logging
from collections.abc import Coroutine, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

import httpx
from celery import Celery  # type: ignore[import-untyped]
from sqlalchemy.orm import Session, sessionmaker

from hub.home import rotation_headers
from hub.queries import push, secure
from hub.queries import service as queries
from hub.queries.calls import PushCall
from hub.queries.recorder import Recorder
from hub.queries.signals import Signals, query_key
from hub.queries.transport import bounded_concurrency
from hub.settings import HubSettings

log = logging.getLogger("hub.federation")
CLOSE_GRACE_SECONDS = 10.0


class Dispatcher(Protocol):
    async def dispatch(
        self,
        *,
        query_id: str,
        push_nodes: Sequence[str],
        deadline: datetime,
        calls: Sequence[PushCall] = (),
    ) -> None:
        """Start one delivery per push node and arrange completion at `deadline`.

        `calls`: the push deliveries as planned (`Prepared.push_calls`), if the caller has them.
        """

    async def redeliver(self, *, tasks: Sequence[tuple[str, str]]) -> None:
        """Send again these (query id, node id) deliveries, claimed by the sweeper."""

    async def secure(self, *, query_id: str, deadline: datetime) -> None:
        """Run a secure aggregation query's nodes together and arrange completion."""

    async def close(self) -> None: ...


class Deadlines:
    """Complete each query at its deadline: a timer on the hub's event loop per query.

    A timer lost with the process (a hub restart) is covered by the `Sweeper` and by reads,
    which apply a passed deadline first. (Not a Celery ETA task: a Redis broker redelivers
    those every visibility timeout, and loses them on a restart without persistence.)
    """

    def __init__(self, *, sessions: sessionmaker[Session], signals: Signals) -> None:
        self._sessions = sessions
        self._signals = signals
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def arm(self, query_id: str, deadline: datetime) -> None:
        delay = max((deadline - datetime.now(UTC)).total_seconds(), 0)
        self._timers[query_id] = asyncio.get_running_loop().call_later(delay, self._fire, query_id)

    def _fire(self, query_id: str) -> None:
        self._timers.pop(query_id, None)
        task = asyncio.ensure_future(self._finalize(query_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _finalize(self, query_id: str) -> None:
        def run() -> bool:
            with self._sessions() as session:
                return queries.finalize_due(session=session, query_id=query_id)

        try:
            if await asyncio.to_thread(run):
                self._signals.notify(query_key(query_id))
        except Exception as exc:  # the sweeper tries again
            log.error(
                "completing query %s at its deadline failed (%s)", query_id, type(exc).__name__
            )

    async def close(self) -> None:
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


class InProcessDispatcher:
    """Deliveries as tasks on the hub's event loop; call `dispatch` from that loop.

    Answers go to the process's `Recorder` (group commit), which pull answers share.
    """

    def __init__(
        self,
        *,
        client: httpx.AsyncClient,
        sessions: sessionmaker[Session],
        settings: HubSettings,
        signals: Signals,
        recorder: Recorder | None = None,
    ) -> None:
        self._client = client
        self._sessions = sessions
        self._settings = settings
        self._signals = signals
        self._tasks: set[asyncio.Task[None]] = set()
        self._deadlines = Deadlines(sessions=sessions, signals=signals)
        self._recorder = recorder or Recorder(sessions=sessions, signals=signals)
        self._own_recorder = recorder is None
        self._in_flight: set[tuple[str, str]] = set()
        # Bounded fan-out: a query to 1,000 nodes holds at most this many connections and
        # answers in memory at once; the others wait their turn in order (their deadline
        # still runs). A queue, not a semaphore: 1,000 tasks waiting on an asyncio.Semaphore
        # cost O(N) per acquire (it scans its waiters), O(N^2) per query.
        self._waiting: collections.deque[tuple[PushCall, Mapping[str, str]]] = collections.deque()
        self._running = 0
        self._limit = bounded_concurrency(settings.node_concurrency)

    async def dispatch(
        self,
        *,
        query_id: str,
        push_nodes: Sequence[str],
        deadline: datetime,
        calls: Sequence[PushCall] = (),
    ) -> None:
        if push_nodes and not calls:

            def load() -> list[PushCall]:
                with self._sessions() as session:
                    return push.load_push_calls(session=session, query_id=query_id)

            calls = await asyncio.to_thread(load)
        self._enqueue(calls)
        self._deadlines.arm(query_id, deadline)

    async def redeliver(self, *, tasks: Sequence[tuple[str, str]]) -> None:
        by_query: dict[str, list[str]] = {}
        for query_id, node_id in tasks:
            if (query_id, node_id) not in self._in_flight:  # still trying: leave it be
                by_query.setdefault(query_id, []).append(node_id)
        for query_id, node_ids in by_query.items():

            def load(qid: str = query_id, nids: list[str] = node_ids) -> list[PushCall]:
                with self._sessions() as session:
                    return push.load_push_calls(session=session, query_id=qid, node_ids=nids)

            self._enqueue(await asyncio.to_thread(load))

    async def secure(self, *, query_id: str, deadline: datetime) -> None:
        self._spawn(self._secure(query_id))
        self._deadlines.arm(query_id, deadline)

    async def _secure(self, query_id: str) -> None:
        try:
            await secure.run(
                client=self._client,
                sessions=self._sessions,
                settings=self._settings,
                query_id=query_id,
            )
        except Exception as exc:  # like a delivery: never takes the hub down
            log.error("secure aggregation of query %s failed (%s)", query_id, type(exc).__name__)
            await asyncio.to_thread(secure.settle_failed, self._sessions, query_id)
        self._signals.notify(query_key(query_id))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _enqueue(self, calls: Sequence[PushCall]) -> None:
        # Read once for the calls handed in together (a stat of the rotation file per
        # delivery was 2% of the hub's CPU per node), after their requests were signed: a
        # rotation made before then is announced on each of them.
        headers = rotation_headers(self._settings.home)
        for call in calls:
            # In flight until its outcome is recorded: the sweeper never resends it meanwhile.
            self._in_flight.add((call.query_id, call.node_id))
            self._waiting.append((call, headers))
        self._start_waiting()

    def _start_waiting(self) -> None:
        while self._running < self._limit and self._waiting:
            self._running += 1
            self._spawn(self._deliver(*self._waiting.popleft()))

    async def _deliver(self, call: PushCall, headers: Mapping[str, str]) -> None:
        key = (call.query_id, call.node_id)
        try:
            result = await push.post_with_retries(
                client=self._client, call=call, settings=self._settings, headers=headers
            )
        except Exception as exc:  # never takes the hub down; recorded, so never resent
            log.error(
                "delivery to node %s for query %s failed (%s)",
                call.node_id,
                call.query_id,
                type(exc).__name__,
            )
            result = push.delivery_failed(call.node_id)
        finally:
            self._running -= 1
            self._start_waiting()
        try:
            await self._recorder.record(push.to_outcome(call, result))
        finally:
            self._in_flight.discard(key)

    async def close(self) -> None:
        await self._deadlines.close()
        # Let deliveries in flight (and those they start) record their outcome, each bounded
        # by the node timeout: a cancelled one would leave its database thread running past
        # shutdown. What is still waiting then stays pending: the sweeper sends it again.
        give_up = asyncio.get_running_loop().time() + CLOSE_GRACE_SECONDS
        while self._tasks and (left := give_up - asyncio.get_running_loop().time()) > 0:
            await asyncio.wait(list(self._tasks), timeout=left)
        self._waiting.clear()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._own_recorder:
            await self._recorder.close()


class CeleryDispatcher:
    """Push deliveries as Celery tasks on the configured broker; deadlines in this process.

    One message per query carries up to `DELIVERY_BATCH` of its nodes (`sauti.hub.deliver_many`:
    a worker runs each node's delivery on its own, as `sauti.hub.deliver` does one): publishing
    20 messages per query was a third of the API processes' CPU (kombu makes a Redis client
    per publish), and a query of 1,000 nodes still spreads over the worker processes."""

    def __init__(
        self,
        *,
        app: Celery,
        settings: HubSettings,
        sessions: sessionmaker[Session],
        signals: Signals,
    ) -> None:
        self._app = app
        self._queue = settings.celery_queue
        self._deadlines = Deadlines(sessions=sessions, signals=signals)

    async def dispatch(
        self,
        *,
        query_id: str,
        push_nodes: Sequence[str],
        deadline: datetime,
        calls: Sequence[PushCall] = (),
    ) -> None:
        self._deadlines.arm(query_id, deadline)
        # Publishing talks to the broker: off the event loop.
        await asyncio.to_thread(self._send, query_id, tuple(push_nodes))

    def _send(self, query_id: str, push_nodes: tuple[str, ...]) -> None:
        try:
            self._publish({query_id: list(push_nodes)})
        except Exception as exc:  # the broker is down: the query is recorded, the sweeper resends
            log.warning(
                "could not publish query %s to the broker (%s); it will be sent again",
                query_id,
                type(exc).__name__,
            )

    async def redeliver(self, *, tasks: Sequence[tuple[str, str]]) -> None:
        await asyncio.to_thread(self._resend, tuple(tasks))

    async def secure(self, *, query_id: str, deadline: datetime) -> None:
        self._deadlines.arm(query_id, deadline)
        await asyncio.to_thread(self._send_secure, query_id)

    def _send_secure(self, query_id: str) -> None:
        try:
            self._app.send_task(SECURE_TASK, args=(query_id,), queue=self._queue)
        except Exception as exc:  # the query stays open and completes at its deadline
            log.warning(
                "could not publish secure query %s to the broker (%s)", query_id, type(exc).__name__
            )

    def _publish(self, by_query: dict[str, list[str]]) -> None:
        with self._app.producer_or_acquire() as producer:
            for query_id, node_ids in by_query.items():
                for start in range(0, len(node_ids), DELIVERY_BATCH):
                    self._app.send_task(
                        DELIVER_MANY_TASK,
                        args=(query_id, node_ids[start : start + DELIVERY_BATCH]),
                        queue=self._queue,
                        producer=producer,
                    )

    def _resend(self, tasks: tuple[tuple[str, str], ...]) -> None:
        by_query: dict[str, list[str]] = {}
        for query_id, node_id in tasks:
            by_query.setdefault(query_id, []).append(node_id)
        try:
            self._publish(by_query)
        except Exception as exc:
            log.warning("could not publish to the broker (%s); will retry", type(exc).__name__)

    async def close(self) -> None:
        await self._deadlines.close()


class Sweeper:
    """Every `interval` seconds: resend push deliveries left pending `after` seconds since
    they were last sent, and complete queries whose deadline passed. Runs in the hub process
    (one per replica; claims are row-locked, so replicas never resend the same task twice)."""

    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        dispatcher: Dispatcher,
        signals: Signals,
        after: float,
    ) -> None:
        self._sessions = sessions
        self._dispatcher = dispatcher
        self._signals = signals
        self._after = after
        self._interval = max(after / 2, 0.5)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._loop())

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.sweep()
            except Exception as exc:  # the database may be briefly away; try again next round
                log.error("sweeping open deliveries failed (%s)", type(exc).__name__)

    async def sweep(self) -> None:
        def claim() -> tuple[list[tuple[str, str]], list[str]]:
            with self._sessions() as session:
                stale = push.claim_stale(session=session, older_than_seconds=self._after)
                return stale, push.due_queries(session=session)

        stale, due = await asyncio.to_thread(claim)
        if stale:
            log.info("sending %d pending deliveries again", len(stale))
            await self._dispatcher.redeliver(tasks=stale)
        for query_id in due:

            def finalize(qid: str = query_id) -> bool:
                with self._sessions() as session:
                    return queries.finalize_due(session=session, query_id=qid)

            try:
                if await asyncio.to_thread(finalize):
                    self._signals.notify(query_key(query_id))
            except Exception as exc:  # one query that cannot complete never blocks the rest
                log.error("completing query %s failed (%s)", query_id, type(exc).__name__)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


DELIVER_TASK = "sauti.hub.deliver"
DELIVER_MANY_TASK = "sauti.hub.deliver_many"
# Nodes of one query per `sauti.hub.deliver_many` message.
DELIVERY_BATCH = 50
FINALIZE_TASK = "sauti.hub.finalize"
SECURE_TASK = "sauti.hub.secure"
