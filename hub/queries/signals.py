"""Wake waiting requests in this process when a query progresses or a pull task appears.

Progress written by another process (a Celery worker, another API process) is signalled by
`hub.queries.progress` on PostgreSQL (`remote_progress` is True while it listens); waiters
also re-read the database (every `progress_poll_seconds`, or `progress_fallback_seconds`
while remote progress is heard), so a missed signal costs at most that long.
"""

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress


class Signals:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiters: dict[str, set[tuple[asyncio.AbstractEventLoop, asyncio.Event]]] = {}
        # True while progress recorded by other processes is signalled here too.
        self.remote_progress = False

    @contextmanager
    def listen(self, key: str) -> Iterator[asyncio.Event]:
        """An event set by the next `notify(key)`; register before checking the state."""
        entry = (asyncio.get_running_loop(), asyncio.Event())
        with self._lock:
            self._waiters.setdefault(key, set()).add(entry)
        try:
            yield entry[1]
        finally:
            with self._lock:
                waiters = self._waiters.get(key)
                if waiters is not None:
                    waiters.discard(entry)
                    if not waiters:
                        del self._waiters[key]

    def notify(self, key: str) -> None:
        """Safe from any thread."""
        with self._lock:
            waiters = list(self._waiters.get(key, ()))
        if not waiters:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        for loop, event in waiters:
            if loop is running:
                # On the waiter's own loop (the recorder notifies once per answer): set it
                # here, without a write to the loop's wake-up pipe each time.
                event.set()
            elif not loop.is_closed():
                loop.call_soon_threadsafe(event.set)

    def notify_all(self) -> None:
        """Wake every waiter (they re-read: what changed meanwhile may not be signalled)."""
        with self._lock:
            keys = list(self._waiters)
        for key in keys:
            self.notify(key)


async def wait_event(event: asyncio.Event, timeout: float) -> None:
    """Wait for `event` at most `timeout` seconds, then clear it for the next round."""
    with suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), timeout=max(timeout, 0))
    event.clear()


def query_key(query_id: str) -> str:
    return f"query:{query_id}"


def node_key(node_id: str) -> str:
    return f"node:{node_id}"
