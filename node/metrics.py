"""Prometheus metrics of the node: HTTP traffic, query outcomes and latency, budget spent.

The transports (the push route, the pull loop) wrap their call of the query handler in
`observing_query`; the handler itself knows no metrics.

Labels carry only route templates, HTTP methods and statuses, error codes and agreement
ids: never a path as sent, a dataset value, a level or a count from the data. Budget
figures are read from the ledger at scrape time, so `serve` and `pull` agree.
"""

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from fastapi import FastAPI
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import start_http_server
from prometheus_client.registry import Collector
from sqlalchemy import select

from node.auth.exceptions import Unauthenticated
from node.db import transaction
from node.exceptions import NodeError
from node.ledger.models import BudgetRow
from node.security import UNVERIFIED
from node.settings import NodeSettings
from runtime import metrics

HTTP = metrics.HttpMetrics("node", latency_help="HTTP request latency by route template.")
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
    buckets=metrics.LATENCY_BUCKETS,
    registry=None,
)
HUB_LAST_SEEN = Gauge(
    "sauti_node_hub_last_query_timestamp_seconds",
    "When this process last received a query the hub signed (push or pull), Unix time.",
    registry=None,
)


@contextmanager
def observing_query() -> Iterator[None]:
    """Count and time one hub query a transport hands to the handler: `released`, or the
    refusal's code."""
    started = time.perf_counter()
    try:
        yield
    except NodeError as exc:
        QUERIES.labels(outcome=exc.code).inc()
        QUERY_LATENCY.labels(result="refused").observe(time.perf_counter() - started)
        raise
    QUERIES.labels(outcome="released").inc()
    QUERY_LATENCY.labels(result="released").observe(time.perf_counter() - started)


def hub_heard() -> None:
    """The handler verified a request the hub signed (push or pull): now is when."""
    HUB_LAST_SEEN.set_to_current_time()


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
    HTTP.register(registry)
    for metric in (QUERIES, QUERY_LATENCY, HUB_LAST_SEEN, UNVERIFIED):
        registry.register(metric)
    registry.register(LedgerCollector(settings.db_url))
    return registry


def install(app: FastAPI, settings: NodeSettings) -> None:
    """`GET /metrics`, answered only with `Authorization: Bearer <NODE_METRICS_TOKEN>`."""
    metrics.install(
        app,
        http=HTTP,
        token=settings.metrics_token,
        registry=lambda: registry_for(settings),
        refuse=lambda: Unauthenticated("metrics need the NODE_METRICS_TOKEN bearer token"),
    )


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
