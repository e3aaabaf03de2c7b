"""`sauti hub worker --processes N`: N worker processes under one small supervisor.

Each child is spawned (nothing of the parent's state is shared: broker connection, event loop,
database pool are its own) and runs the same function a single worker runs. A stop signal
(SIGTERM from an orchestrator, SIGINT from a terminal) is passed on to every child, which
finishes its deliveries in flight (Celery's warm shutdown); a child that dies on its own is
replaced (killed by a signal: the OOM killer, an operator), and what it was delivering is
sent again by the hub's sweeper. A child that fails on its own (exits with an error code)
ends the whole group with an error: the orchestrator restarts it, with its own backoff.
"""

import logging
import multiprocessing
import signal
import time
from collections.abc import Callable
from multiprocessing.process import BaseProcess
from types import FrameType
from typing import Any

log = logging.getLogger("sauti.worker")
POLL_SECONDS = 0.5
STOP_TIMEOUT_SECONDS = 60.0


def supervise(count: int, *, target: Callable[..., None], **kwargs: Any) -> None:
    """Run `target(**kwargs)` in `count` spawned processes until a stop signal; exit 1 once a
    child fails."""
    context = multiprocessing.get_context("spawn")
    stopping = False

    def start() -> BaseProcess:
        child = context.Process(target=target, kwargs=kwargs, daemon=False)
        child.start()
        return child

    def stop(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        if stopping:  # once: a second SIGTERM would not add anything
            return
        stopping = True
        for child in children:
            if child.is_alive():
                child.terminate()  # SIGTERM: Celery's warm shutdown

    children = [start() for _ in range(count)]
    previous = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
    failed = False
    try:
        while not stopping:
            time.sleep(POLL_SECONDS)
            for index, child in enumerate(children):
                if stopping or child.is_alive():
                    continue
                code = child.exitcode or 0
                if code > 0:
                    log.error("worker process %d failed (code %s)", index, code)
                    failed = True
                    stop(signal.SIGTERM, None)
                    break
                log.warning("worker process %d ended (code %s); starting another", index, code)
                children[index] = start()
    finally:
        stop(signal.SIGTERM, None)
        deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
        for child in children:
            child.join(max(deadline - time.monotonic(), 0.1))
            if child.is_alive():
                child.kill()
                child.join(5)
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if failed:
        raise SystemExit(1)
