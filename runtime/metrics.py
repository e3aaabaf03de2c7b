"""Prometheus plumbing both sides run: HTTP traffic by route template and `GET /metrics`.

Labels carry only route templates, HTTP methods and statuses: never a path as sent. Each
side names its metrics (`sauti_hub_...`, `sauti_node_...`) and adds its own collectors.
"""

import hmac
import time
from collections.abc import Callable, Sequence

from fastapi import FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import generate_latest
from pydantic import SecretStr
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class HttpMetrics:
    """Requests by route template, method and status, and their latency, for one side."""

    def __init__(
        self, side: str, *, latency_help: str, buckets: Sequence[float] = LATENCY_BUCKETS
    ) -> None:
        self.requests = Counter(
            f"sauti_{side}_http_requests",
            "HTTP requests by route template, method and status.",
            ["method", "route", "status"],
            registry=None,
        )
        self.latency = Histogram(
            f"sauti_{side}_http_request_duration_seconds",
            latency_help,
            ["method", "route"],
            buckets=buckets,
            registry=None,
        )

    def register(self, registry: CollectorRegistry) -> None:
        registry.register(self.requests)
        registry.register(self.latency)


class MetricsMiddleware:
    """Counts and times every request by its route template (pure ASGI: no body buffering)."""

    def __init__(self, app: ASGIApp, *, metrics: HttpMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            method = scope["method"]
            self.metrics.requests.labels(method=method, route=route, status=str(status)).inc()
            elapsed = time.perf_counter() - started
            self.metrics.latency.labels(method=method, route=route).observe(elapsed)


def install(
    app: FastAPI,
    *,
    http: HttpMetrics,
    token: SecretStr | None,
    registry: Callable[[], CollectorRegistry],
    refuse: Callable[[], Exception],
) -> None:
    """Count every request; `GET /metrics` answers only `Authorization: Bearer <token>`.

    Without a token configured there is no such route (404): metrics are off unless asked
    for. A token of its own, not an account's: Prometheus needs no account and no role.
    `refuse` makes the side's own 401 error for a missing or wrong token.
    """
    app.add_middleware(MetricsMiddleware, metrics=http)
    if token is None:
        return
    expected = f"Bearer {token.get_secret_value()}".encode()
    built = registry()

    @app.get("/metrics", include_in_schema=False)
    def metrics(request: Request) -> Response:
        given = request.headers.get("authorization", "").encode()
        if not hmac.compare_digest(given, expected):
            raise refuse()
        return Response(generate_latest(built), media_type=CONTENT_TYPE_LATEST)
