"""Prometheus metrics of the hub: HTTP traffic and latency, queries, budget, node last-seen.

Labels carry only route templates, HTTP methods and statuses, query statuses, task
outcomes, agreement ids and node ids: never a path as sent, a spec, a level or an estimate.
Everything but HTTP traffic is read from the database at scrape time, so the web
processes and the Celery workers report one truth (one grouped query per family).
"""

import hmac
import time
from collections import defaultdict
from collections.abc import Iterator

from fastapi import FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from contracts import budget as exact
from hub.exceptions import Unauthenticated
from hub.federation.models import Node
from hub.queries.models import QueryNodeRow, QueryRow
from hub.settings import HubSettings

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
# Outcomes that mean the node itself answered (the hub writes timeout and expired).
_NODE_ANSWERED = ("ok", "refused", "failed")

HTTP_REQUESTS = Counter(
    "sauti_hub_http_requests",
    "HTTP requests by route template, method and status.",
    ["method", "route", "status"],
    registry=None,
)
HTTP_LATENCY = Histogram(
    "sauti_hub_http_request_duration_seconds",
    "HTTP request latency by route template (POST /v1/queries: what analysts wait).",
    ["method", "route"],
    buckets=_LATENCY_BUCKETS,
    registry=None,
)


class DatabaseCollector(Collector):
    """Queries by status, node tasks by outcome, rho spent, node last-seen: from the database."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    def collect(self) -> Iterator[Metric]:
        queries = GaugeMetricFamily(
            "sauti_hub_queries", "Queries by status (running, complete, ...).", labels=["status"]
        )
        tasks = GaugeMetricFamily(
            "sauti_hub_query_tasks",
            "Per-node query tasks by outcome (ok, refused, failed, timeout, expired, pending).",
            labels=["outcome"],
        )
        spent = GaugeMetricFamily(
            "sauti_hub_budget_spent_rho",
            "zCDP rho asked of each node party per agreement (parallel composition).",
            labels=["agreement_id"],
        )
        seen = GaugeMetricFamily(
            "sauti_hub_node_last_seen_timestamp_seconds",
            "When each node last answered a task (release, refusal or error), Unix time.",
            labels=["node_id"],
        )
        nodes = GaugeMetricFamily(
            "sauti_hub_nodes", "Registered nodes by status and mode.", labels=["status", "mode"]
        )
        with self.sessions() as session:
            for status, n in session.execute(
                select(QueryRow.status, func.count()).group_by(QueryRow.status)
            ):
                queries.add_metric([status], n)
            for outcome, n in session.execute(
                select(QueryNodeRow.outcome, func.count()).group_by(QueryNodeRow.outcome)
            ):
                tasks.add_metric([outcome], n)
            # Summed exactly in Python (contracts.budget), not as SQL doubles, so 37 queries
            # of 0.01 report 0.37; the gauge then carries the double nearest that total.
            asked: dict[str, list[float]] = defaultdict(list)
            for agreement_id, spec in session.execute(select(QueryRow.agreement_id, QueryRow.spec)):
                asked[agreement_id].append(spec.get("rho", 0))
            for agreement_id, costs in sorted(asked.items()):
                spent.add_metric([agreement_id], float(exact.total(costs)))
            for node_id, at in session.execute(
                select(QueryNodeRow.node_id, func.max(QueryNodeRow.answered_at))
                .where(QueryNodeRow.outcome.in_(_NODE_ANSWERED))
                .group_by(QueryNodeRow.node_id)
            ):
                if at is not None:
                    seen.add_metric([node_id], at.timestamp())
            for status, mode, n in session.execute(
                select(Node.status, Node.mode, func.count()).group_by(Node.status, Node.mode)
            ):
                nodes.add_metric([status, mode], n)
        yield from (queries, tasks, spent, seen, nodes)


def registry_for(sessions: sessionmaker[Session]) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(HTTP_REQUESTS)
    registry.register(HTTP_LATENCY)
    registry.register(DatabaseCollector(sessions))
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


def install(app: FastAPI, settings: HubSettings, sessions: sessionmaker[Session]) -> None:
    """`GET /metrics`, answered only with `Authorization: Bearer <HUB_METRICS_TOKEN>`.

    Without a token configured there is no such route (404): metrics are off unless asked
    for. A separate token, not an API token: Prometheus needs no account and no role.
    """
    app.add_middleware(MetricsMiddleware)
    if settings.metrics_token is None:
        return
    expected = f"Bearer {settings.metrics_token.get_secret_value()}".encode()
    registry = registry_for(sessions)

    @app.get("/metrics", include_in_schema=False)
    def metrics(request: Request) -> Response:
        given = request.headers.get("authorization", "").encode()
        if not hmac.compare_digest(given, expected):
            raise Unauthenticated("metrics need the HUB_METRICS_TOKEN bearer token")
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
