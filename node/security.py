"""The node's security log: traffic no verified party can be held to, kept out of the chain.

A request whose hub signature is missing or does not verify, a body that is not a signed
message, a signed payload that is not the model its route takes, or a request signed for
secure aggregation replayed to the plain route: anyone who reaches a push node can send
these. The signed audit chain records what a verified party did (docs/architecture.md), so
these go only to the `node.security` logger, rate-limited so a flood cannot fill the disk,
and to the `sauti_node_unverified_requests_total` counter (route template and code), so
monitoring still sees every one. Mirrors the hub, which keeps anonymous refusals out of its
own chain (hub/auth/refusals.py).
"""

import logging
import threading
import time
from collections.abc import Callable

from prometheus_client import Counter

log = logging.getLogger("node.security")

UNVERIFIED = Counter(
    "sauti_node_unverified_requests",
    "Requests refused before any hub signature verified, by route and refusal code.",
    ["route", "code"],
    registry=None,
)
# The security log writes at most BURST lines at once, then one every INTERVAL seconds; the
# next line says how many refusals were left out meanwhile (the counter has them all).
BURST = 10
INTERVAL_SECONDS = 6.0


class RateLimitedLog:
    """A token bucket in front of one logger: BURST lines, refilled one per interval."""

    def __init__(
        self,
        logger: logging.Logger,
        *,
        burst: int = BURST,
        interval: float = INTERVAL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger = logger
        self._burst = burst
        self._interval = interval
        self._clock = clock
        self._tokens = float(burst)
        self._stamp = clock()
        self._suppressed = 0
        self._lock = threading.Lock()

    def warning(self, message: str, *args: object) -> bool:
        """Log unless over the rate; True when the line was written."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self._burst, self._tokens + (now - self._stamp) / self._interval)
            self._stamp = now
            if self._tokens < 1:
                self._suppressed += 1
                return False
            self._tokens -= 1
            suppressed, self._suppressed = self._suppressed, 0
        if suppressed:
            self._logger.warning(
                message + " (%d similar refusals not logged before this one)", *args, suppressed
            )
        else:
            self._logger.warning(message, *args)
        return True


_limited = RateLimitedLog(log)


def unverified(*, route: str, code: str) -> None:
    """Count and (rate-limited) log one refusal of unverified traffic; names no value sent."""
    UNVERIFIED.labels(route=route, code=code).inc()
    _limited.warning("refused unverified request on %s: %s", route, code)
