"""Prometheus metrics of the node: HTTP traffic, query outcomes and latency, budget spent.

Labels carry only route templates, HTTP methods and statuses, error codes and agreement
ids: never a path as sent, a dataset value, a level or a count from the data. Budget
figures are read from the ledger at scrape time, so `serve` and `pull` agree.
"""

import hmac
import time
from collections.abc import Callable, Iterator
from datetime import datetime

from fastapi import FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest, start_http_server
from prometheus_client.registry import Collector
from sqlalchemy import select
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from contracts.v1 import Signed
from node.auth.exceptions import Unauthenticated
from node.db import transaction
from node.exceptions import NodeError
from node.ledger.models import BudgetRow
from node.queries.service import PUSH_ROUTE, handle_query
from node.security import UNVERIFIED
from node.settings import NodeSettings

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

HTTP_REQUESTS = Counter(
    "sauti_node_http_requests",
    "HTTP requests by route template, method and status.",
    ["method", "route", "status"],
    registry=None,
)
HTTP_LATENCY = Histogram(
    "sauti_node_http_request_duration_seconds",
    "HTTP request latency by route template.",
    ["method", "route"],
    buckets=_LATENCY_BUCKETS,
    registry=None,
)
QUERIES = Counter(
    "sauti_node_queries",
    "Hub queries handled (push or pull): outcome is `released` or the refusal code.",
    ["outcome"],
    registry=None,
)
QUERY_LATENCY = Histogram(
    "sauti_node_query_duration_seconds",
    "Time to check, charge and answer one hub query.",
    ["result"],
    buckets=_LATENCY_BUCKETS,
    registry=None,
)
HUB_LAST_SEEN = Gauge(
    "sauti_node_hub_last_query_timestamp_seconds",
    "When this process last received a query the hub signed (push or pull), Unix time.",
    registry=None,
)


def observed_handle_query(
    *, settings: NodeSettings, signed: Signed, now: datetime | None = None, route: str = PUSH_ROUTE
) -> Signed:
    """`handle_query`, counted and timed: the one entry of both transports."""
    started = time.perf_counter()
    try:
        answer = handle_query(
            settings=settings,
            signed=signed,
            now=now,
            route=route,
            on_verified=HUB_LAST_SEEN.set_to_current_time,
        )
    except NodeError as exc:
        QUERIES.labels(outcome=exc.code).inc()
        QUERY_LATENCY.labels(result="refused").observe(time.perf_counter() - started)
        raise
    QUERIES.labels(outcome="released").inc()
    QUERY_LATENCY.labels(result="released").observe(time.perf_counter() - started)
    return answer


class LedgerCollector(Collector):
    """Budget spent and queries charged per agreement, read from the ledger when scraped."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url

    def collect(self) -> Iterator[Metric]:
        spent = GaugeMetricFamily(
            "sauti_node_budget_spent_rho", "zCDP rho spent per agreement.", labels=["agreement_id"]
        )
        charged = GaugeMetricFamily(
            "sauti_node_budget_queries", "Queries charged per agreement.", labels=["agreement_id"]
        )
        with transaction(self.database_url) as session:
            for row in session.scalars(select(BudgetRow).order_by(BudgetRow.agreement_id)):
                # Prometheus values are doubles: the nearest one to the exact total, which is
                # never above the budget's own double when the total is within the budget.
                spent.add_metric([row.agreement_id], float(row.rho_spent))
                charged.add_metric([row.agreement_id], row.queries)
        yield spent
        yield charged


def registry_for(settings: NodeSettings) -> CollectorRegistry:
    registry = CollectorRegistry()
    for metric in (HTTP_REQUESTS, HTTP_LATENCY, QUERIES, QUERY_LATENCY, HUB_LAST_SEEN, UNVERIFIED):
        registry.register(metric)
    registry.register(LedgerCollector(settings.db_url))
    return registry


class MetricsMiddleware:
    """Counts and times every request by its route template (pure ASGI: no body buffering)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

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
            HTTP_REQUESTS.labels(method=method, route=route, status=str(status)).inc()
            HTTP_LATENCY.labels(method=method, route=route).observe(time.perf_counter() - started)


def install(app: FastAPI, settings: NodeSettings) -> None:
    """`GET /metrics`, answered only with `Authorization: Bearer <NODE_METRICS_TOKEN>`.

    Without a token configured there is no such route (404): metrics are off unless asked for.
    """
    app.add_middleware(MetricsMiddleware)
    if settings.metrics_token is None:
        return
    expected = f"Bearer {settings.metrics_token.get_secret_value()}".encode()
    registry = registry_for(settings)

    @app.get("/metrics", include_in_schema=False)
    def metrics(request: Request) -> Response:
        given = request.headers.get("authorization", "").encode()
        if not hmac.compare_digest(given, expected):
            raise Unauthenticated("metrics need the NODE_METRICS_TOKEN bearer token")
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


def serve_separately(settings: NodeSettings) -> Callable[[], None] | None:
    """For `sauti node pull` (no API): /metrics on NODE_METRICS_HOST:NODE_METRICS_PORT.

    No token there: the port is meant for loopback or a monitoring network only. Returns
    the function that stops it (None when no port is set).
    """
    if settings.metrics_port is None:
        return None
    server, _thread = start_http_server(
        settings.metrics_port, addr=settings.metrics_host, registry=registry_for(settings)
    )

    def stop() -> None:
        server.shutdown()
        server.server_close()

    return stop
