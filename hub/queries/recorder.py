"""Group commit of node answers in a hub process: push deliveries and pull answers alike.

Whatever has arrived since the last write is recorded in one transaction
(`service.record_outcomes`: the query row locked and the batch's tasks read once per query,
one executemany per kind of outcome, one audit append), so N nodes answering together cost a
few commits, not N, and writers never meet at SQLite's lock (where they would sleep in coarse
busy steps). Push outcomes are handed over and forgotten (`submit`); a pull node's answer
waits for its own result (`record`), so the node hears whether it was stored.
"""

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from hub.queries import push
from hub.queries import service as queries
from hub.queries.signals import Signals, query_key

log = logging.getLogger("hub.federation")


@dataclass(frozen=True)
class _Item:
    outcome: queries.Outcome
    # A pull answer's waiter (None: a push outcome, recorded as `push.record_safely` does).
    waiter: asyncio.Future[bool] | None
    on_recorded: Callable[[], None] | None = None


class Recorder:
    """One writer task per event loop; call from that loop."""

    def __init__(self, *, sessions: sessionmaker[Session], signals: Signals) -> None:
        self._sessions = sessions
        self._signals = signals
        self._queue: asyncio.Queue[_Item] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    def submit(
        self, outcome: queries.Outcome, *, on_recorded: Callable[[], None] | None = None
    ) -> None:
        """Record a push outcome with the next batch; `on_recorded` runs once it was written
        (or dropped as late or duplicate, or failed as `record_failed`)."""
        self._start()
        self._queue.put_nowait(_Item(outcome, None, on_recorded))

    async def record(self, outcome: queries.Outcome) -> bool:
        """Record a pull node's answer with the next batch: True if stored, False if its task
        was already closed (a duplicate, or after the deadline); raises what recording it on
        its own raised (the node sends it again)."""
        self._start()
        waiter: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Item(outcome, waiter))
        return await waiter

    def _start(self) -> None:
        if self._task is None:
            self._task = asyncio.ensure_future(self._loop())

    async def _loop(self) -> None:
        while True:
            batch = [await self._queue.get()]
            await self._write(batch)

    async def _write(self, batch: list[_Item]) -> None:
        while not self._queue.empty():
            batch.append(self._queue.get_nowait())
        try:
            results = await asyncio.to_thread(self._record, batch)
        except Exception as exc:  # each item was tried on its own already
            log.error("recording %d node answers failed (%s)", len(batch), type(exc).__name__)
            results = [exc] * len(batch)
        for item, result in zip(batch, results, strict=True):
            if item.waiter is not None and not item.waiter.done():
                if isinstance(result, BaseException):
                    item.waiter.set_exception(result)
                else:
                    item.waiter.set_result(result)
            elif result is False:
                log.warning(
                    "late or duplicate answer from node %s for query %s dropped",
                    item.outcome.node_id,
                    item.outcome.query_id,
                )
            if item.on_recorded is not None:
                item.on_recorded()
            self._signals.notify(query_key(item.outcome.query_id))

    def _record(self, batch: list[_Item]) -> list[bool | Exception]:
        outcomes = [item.outcome for item in batch]
        try:
            with self._sessions() as session:
                return list(queries.record_outcomes(session=session, outcomes=outcomes))
        except Exception as exc:
            log.error("recording %d node answers together failed (%s)", len(batch), _name(exc))
        # One poisoned answer never loses the others: each on its own.
        results: list[bool | Exception] = []
        for item in batch:
            if item.waiter is None:
                results.append(push.record_safely(self._sessions, [item.outcome])[0])
                continue
            try:
                with self._sessions() as session:
                    (stored,) = queries.record_outcomes(session=session, outcomes=[item.outcome])
                results.append(stored)
            except Exception as exc:
                results.append(exc)
        return results

    async def close(self) -> None:
        """Write what is queued, then stop."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        while not self._queue.empty():
            await self._write([self._queue.get_nowait()])


def _name(exc: BaseException) -> str:
    # The type only: an exception's text may carry SQL parameters or node data.
    return type(exc).__name__
