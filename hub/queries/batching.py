"""Group commit: one run at a time over whatever was handed in meanwhile (`Batcher`).

The answers a hub process records (`hub.queries.recorder.Recorder`) and the deliveries a
worker process starts (`CallLoader`: the tasks of one query, received together, read in one
transaction) go through a `Batcher`: no window is waited for, an item that arrives alone
runs at once, and batches grow only when the database is the bottleneck.
"""

import asyncio
import logging
from collections.abc import Callable
from functools import partial
from typing import Generic, TypeVar

import anyio.to_thread
from sqlalchemy.orm import Session, sessionmaker

from hub.queries import push
from hub.queries.calls import PushCall

log = logging.getLogger("hub.federation")
# A batch is bounded so one transaction never holds many query rows for long.
MAX_BATCH = 500

In = TypeVar("In")
Out = TypeVar("Out")


class Batcher(Generic[In, Out]):
    """Runs `work` (blocking: in a thread) over the items handed to `run` from coroutines of
    one event loop: one run at a time, each over everything handed in while the previous
    one ran. `work` returns one result per item, in order, and never raises."""

    def __init__(self, work: Callable[[list[In]], list[Out]]) -> None:
        self._work = work
        self._queue: asyncio.Queue[tuple[In, asyncio.Future[Out]] | None] | None = None
        self._task: asyncio.Task[None] | None = None

    async def run(self, item: In) -> Out:
        if self._queue is None or self._task is None:
            self._queue = asyncio.Queue()
            self._task = asyncio.ensure_future(self._loop(self._queue))
        future: asyncio.Future[Out] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((item, future))
        # A caller cancelled while its item waits or is in a run (a shutdown) leaves the run to
        # finish: runs are this batcher's own task, and a cancelled caller's future is passed
        # over when results are handed out; an answer is never half recorded, nor recorded
        # twice. (Not asyncio.shield: its second future and callbacks per item were ~2% of the
        # hub's CPU at 1,000 nodes, for the same outcome.)
        return await future

    async def _loop(self, queue: asyncio.Queue[tuple[In, asyncio.Future[Out]] | None]) -> None:
        while True:
            first = await queue.get()
            if first is None:
                return
            batch, stop = [first], False
            while not queue.empty() and len(batch) < MAX_BATCH:
                item = queue.get_nowait()
                if item is None:
                    stop = True
                    break
                batch.append(item)
            try:
                results = await anyio.to_thread.run_sync(self._work, [i for i, _ in batch])
            except BaseException as exc:  # never leaves a caller waiting
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                if not isinstance(exc, Exception):
                    raise
            else:
                for (_, future), result in zip(batch, results, strict=True):
                    if not future.done():
                        future.set_result(result)
            if stop:
                return

    async def close(self) -> None:
        """Finish what was handed in until now, then stop (a later `run` starts again)."""
        if self._task is None or self._queue is None:
            return
        queue, task = self._queue, self._task
        self._queue = self._task = None
        queue.put_nowait(None)
        await asyncio.gather(task, return_exceptions=True)


class CallLoader:
    """Reads the deliveries to start: those handed in together, in one transaction."""

    def __init__(self, *, sessions: sessionmaker[Session]) -> None:
        self._batcher = Batcher(partial(_load, sessions))

    async def load(self, query_id: str, node_id: str) -> PushCall | None:
        """The pending push delivery of `node_id` for `query_id`, or None (closed, a pull
        node, removed...)."""
        return await self._batcher.run((query_id, node_id))

    async def close(self) -> None:
        await self._batcher.close()


def _load(sessions: sessionmaker[Session], wanted: list[tuple[str, str]]) -> list[PushCall | None]:
    try:
        return push.load_calls(sessions, wanted)
    except Exception as exc:  # the sweeper sends them again
        log.error("loading %d deliveries failed (%s)", len(wanted), type(exc).__name__)
        return [None] * len(wanted)
