"""Group commit of node answers: one writer per hub process, push and pull answers alike.

Each answer used to be recorded in a transaction of its own, which locks its query row and
then the hub's audit head: the 20 answers of one query queued on one row, every answer of
every query queued on the head, and more worker processes only added waiters. A `Recorder`
is the one writer of its process (the API process's in-process deliveries and pull answers,
or a Celery worker process's deliveries): answers handed to it while it writes wait and go
together in the next transaction (`service.record_outcomes`: the batch's query rows locked
in one statement, one executemany per kind of outcome, one append to the chain), so a
process's transactions follow the rate of commits the database can make, not the rate of
answers (`hub.queries.batching.Batcher`: no window is waited for).

The guarantees are those of `record_outcomes`, per answer: a task closes once (only a
`pending` task takes an outcome), and `record` returns only once its answer is durable (or
was refused as late or duplicate, or could not be stored: the sweeper then sends it again).
One poisoned answer never loses the others: a batch that fails is recorded answer by answer.
"""

import logging
from dataclasses import dataclass
from functools import partial

from sqlalchemy.orm import Session, sessionmaker

from hub.queries import push
from hub.queries import service as queries
from hub.queries.batching import Batcher
from hub.queries.signals import Signals, query_key

log = logging.getLogger("hub.federation")


@dataclass(frozen=True)
class _Item:
    outcome: queries.Outcome
    # A pull node's answer: a failure to record it is raised to the node (which sends it
    # again), not stored as `record_failed` as a push delivery's is.
    pull: bool


class Recorder:
    """The process's one writer of node answers; call from one event loop."""

    def __init__(self, *, sessions: sessionmaker[Session], signals: Signals | None = None) -> None:
        self._batcher: Batcher[_Item, bool | Exception] = Batcher(partial(_record, sessions))
        self._signals = signals

    async def record(self, outcome: queries.Outcome) -> bool:
        """A push delivery's outcome: True once stored; False if it was not (a late or
        duplicate answer, or the database away: see `push.record_safely`)."""
        result = await self._run(_Item(outcome, pull=False))
        return result is True

    async def record_pull(self, outcome: queries.Outcome) -> bool:
        """A pull node's answer: True if stored, False if its task was already closed (a
        duplicate, or after the deadline); raises what recording it on its own raised."""
        result = await self._run(_Item(outcome, pull=True))
        if isinstance(result, Exception):
            raise result
        return result

    async def _run(self, item: _Item) -> bool | Exception:
        result = await self._batcher.run(item)
        if self._signals is not None:
            self._signals.notify(query_key(item.outcome.query_id))
        return result

    async def close(self) -> None:
        """Write what was handed in until now, then stop."""
        await self._batcher.close()


def _record(sessions: sessionmaker[Session], batch: list[_Item]) -> list[bool | Exception]:
    outcomes = [item.outcome for item in batch]
    try:
        with sessions() as session:
            results: list[bool | Exception] = list(
                queries.record_outcomes(session=session, outcomes=outcomes)
            )
    except Exception as exc:
        log.error("recording %d node answers together failed (%s)", len(batch), _name(exc))
        results = [_record_alone(sessions, item) for item in batch]
    for item, result in zip(batch, results, strict=True):
        if result is False:
            log.warning(
                "late or duplicate answer from node %s for query %s dropped",
                item.outcome.node_id,
                item.outcome.query_id,
            )
    return results


def _record_alone(sessions: sessionmaker[Session], item: _Item) -> bool | Exception:
    if not item.pull:
        return push.record_safely(sessions, [item.outcome])[0]
    try:
        with sessions() as session:
            (stored,) = queries.record_outcomes(session=session, outcomes=[item.outcome])
    except Exception as exc:
        log.error("recording a pull answer failed (%s)", _name(exc))
        return exc
    return stored


def _name(exc: BaseException) -> str:
    # The type only: an exception's text may carry SQL parameters or node data.
    return type(exc).__name__
