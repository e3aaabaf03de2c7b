"""Group commit of node answers: one writer per process records what arrived together.

Each answer used to be recorded in a transaction of its own, which locks its query row and
then the hub's audit head: the 20 answers of one query queued on one row, every answer of
every query queued on the head, and more worker processes only added waiters. A `Recorder`
is the one writer of its process: answers handed to it while it writes wait and go together
in the next transaction (`hub.queries.push.record_safely`: one lock of the batch's query
rows, one append to the chain), so a process's transactions follow the rate of commits the
database can make, not the rate of answers. No window is waited for: an answer that arrives
alone is written at once; batches grow only when writes are the bottleneck.

The guarantees are those of `record_outcomes`, per answer: a task closes once (only a
`pending` task takes an outcome), and `record` returns only once its answer is durable (or
was refused as late or duplicate, or could not be stored: the sweeper then sends it again).
"""

import asyncio
import logging
from collections.abc import Callable
from functools import partial

import anyio.to_thread
from sqlalchemy.orm import Session, sessionmaker

from hub.queries import push
from hub.queries import service as queries

log = logging.getLogger("hub.federation")
# A batch is bounded so one transaction never holds many query rows for long.
MAX_BATCH = 500


_Item = tuple[queries.Outcome, "asyncio.Future[bool]"]


class Recorder:
    """Records outcomes handed to `record` from coroutines of one event loop."""

    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        on_recorded: Callable[[list[queries.Outcome]], None] | None = None,
    ) -> None:
        self._sessions = sessions
        self._on_recorded = on_recorded
        self._queue: asyncio.Queue[_Item | None] | None = None
        self._task: asyncio.Task[None] | None = None

    async def record(self, outcome: queries.Outcome) -> bool:
        """True once `outcome` is stored; False if it was not (see `push.record_safely`)."""
        if self._queue is None or self._task is None:
            self._queue = asyncio.Queue()
            self._task = asyncio.ensure_future(self._run(self._queue))
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((outcome, future))
        # Shielded: a caller cancelled while its answer is written (a shutdown) leaves the
        # write to finish; the answer is never half recorded, nor recorded twice.
        return await asyncio.shield(future)

    async def _run(self, queue: asyncio.Queue[_Item | None]) -> None:
        while True:
            first = await queue.get()
            if first is None:
                return
            batch = [first]
            stop = False
            while not queue.empty() and len(batch) < MAX_BATCH:
                item = queue.get_nowait()
                if item is None:
                    stop = True
                    break
                batch.append(item)
            await self._write(batch)
            if stop:
                return

    async def _write(self, batch: list[_Item]) -> None:
        outcomes = [item for item, _ in batch]
        try:
            stored = await anyio.to_thread.run_sync(
                partial(push.record_safely, self._sessions, outcomes)
            )
        except Exception as exc:  # record_safely already tried each answer on its own
            log.error("recording %d node answers failed (%s)", len(batch), type(exc).__name__)
            stored = [False] * len(batch)
        for (item, future), ok in zip(batch, stored, strict=True):
            if not ok:
                log.warning(
                    "late or duplicate answer from node %s for query %s dropped",
                    item.node_id,
                    item.query_id,
                )
            if not future.done():
                future.set_result(ok)
        if self._on_recorded is not None:
            self._on_recorded(outcomes)

    async def close(self) -> None:
        """Write what was handed over until now, then stop (a later `record` starts again)."""
        if self._task is None or self._queue is None:
            return
        queue, task = self._queue, self._task
        self._queue = self._task = None
        queue.put_nowait(None)
        await asyncio.gather(task, return_exceptions=True)
