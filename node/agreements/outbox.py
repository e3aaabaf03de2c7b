"""The running node's retry loop: signatures and status notices go on to the hub until it confirms.

Signing or a status change tries the hub at once; what could not be sent (hub down, network
away) is sent again from one background thread every `NODE_OUTBOX_RETRY_SECONDS`, as long
as anything waits. A pull node also sends it on every poll (node.sync).
"""

import logging
import threading

from node.agreements import service
from node.settings import NodeSettings

log = logging.getLogger(__name__)


class Retrier:
    """One background thread per node app, started and stopped with the app."""

    def __init__(self, settings: NodeSettings) -> None:
        self.settings = settings
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self.settings.outbox_retry_seconds <= 0 or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="sauti-outbox", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 15.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        interval = self.settings.outbox_retry_seconds
        while not self._stop.wait(interval):
            try:
                if service.pending_deliveries(home=self.settings.home, settings=self.settings):
                    service.report_all(home=self.settings.home, settings=self.settings)
            except Exception as exc:
                log.warning("outbox: not sent this round (%s)", type(exc).__name__)
