"""Query progress across processes: a PostgreSQL notification at commit, heard by every hub
API process, wakes the requests waiting on that query there.

Without it, a request waiting for a query whose answers a Celery worker (or another API
process) records re-read the database every `progress_poll_seconds` (0.1 s): measured by
bench/hub_scale_out.py, those re-reads were most of the API processes' CPU per query. With
it, waiters are woken when something changed and re-read only every
`progress_fallback_seconds` besides (a notification sent while a listener reconnects is
lost; the re-read covers it). SQLite has one writer process: nothing to hear.
"""

import logging
import selectors
import socket
import threading
from collections.abc import Iterable

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from hub.queries.signals import Signals, query_key

log = logging.getLogger("hub.queries")
CHANNEL = "sauti_query_progress"
# A notification's payload is at most 8000 bytes: query ids (36 characters) per notification.
IDS_PER_NOTIFICATION = 200
RECONNECT_SECONDS = 2.0


def announce(session: Session, query_ids: Iterable[str]) -> None:
    """In the caller's transaction: these queries progressed. PostgreSQL delivers the
    notification when the transaction commits, and never if it rolls back."""
    ids = sorted(set(query_ids))
    if not ids or session.get_bind().dialect.name != "postgresql":
        return
    for start in range(0, len(ids), IDS_PER_NOTIFICATION):
        payload = ",".join(ids[start : start + IDS_PER_NOTIFICATION])
        session.execute(select(func.pg_notify(CHANNEL, payload)))


class ProgressListener:
    """One connection of its own per process that LISTENs and wakes `signals`' waiters.

    Sets `signals.remote_progress` while it listens, so waiters know that progress recorded
    elsewhere reaches them and re-read less often; reconnects for as long as it runs. It
    sleeps until its connection or its wake-up socket has something to read: closing wakes
    it at once, with no polling interval to wait out."""

    def __init__(self, *, engine: Engine, signals: Signals) -> None:
        self._engine = engine
        self._signals = signals
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._waker, self._woken = socket.socketpair()

    @staticmethod
    def wanted(engine: Engine) -> bool:
        return engine.dialect.name == "postgresql"

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="hub-progress", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._listen()
            except Exception as exc:  # the database went away: wake everyone, then reconnect
                log.warning("listening for query progress failed (%s)", type(exc).__name__)
            self._signals.remote_progress = False
            self._signals.notify_all()
            self._stop.wait(RECONNECT_SECONDS)

    def _listen(self) -> None:
        # A connection of its own, outside the pool, made as the engine makes its own.
        args, kwargs = self._engine.dialect.create_connect_args(self._engine.url)
        connection = self._engine.dialect.connect(*args, **kwargs)
        try:
            connection.autocommit = True
            connection.execute(f"LISTEN {CHANNEL}")
            self._signals.remote_progress = True
            with selectors.DefaultSelector() as ready:
                ready.register(connection.fileno(), selectors.EVENT_READ)
                ready.register(self._woken, selectors.EVENT_READ)
                while not self._stop.is_set():
                    # What has arrived (read already, or waiting on the socket), then sleep.
                    for note in connection.notifies(timeout=0):
                        for query_id in note.payload.split(","):
                            self._signals.notify(query_key(query_id))
                    ready.select()
        finally:
            connection.close()

    def close(self) -> None:
        self._stop.set()
        self._waker.send(b"\0")
        if self._thread is not None:
            self._thread.join(5)
        self._waker.close()
        self._woken.close()
