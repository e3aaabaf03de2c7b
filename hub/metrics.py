"""Prometheus metrics of the hub: HTTP traffic and latency, queries, budget, node last-seen.

Labels carry only route templates, HTTP methods and statuses, query statuses, task
outcomes, agreement ids and node ids: never a path as sent, a spec, a level or an estimate.
Everything but HTTP traffic is read from the database at scrape time, so the web
processes and the Celery workers report one truth (one grouped query per family).
"""

from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from contracts.v1 import AgreementTerms
from hub.agreements import budget as agreement_budget
from hub.agreements.models import AgreementVersion
from hub.exceptions import Unauthenticated
from hub.nodes.models import Node
from hub.queries.models import QueryNodeRow, QueryRow
from hub.settings import HubSettings
from runtime import metrics

# Outcomes that mean the node itself answered (the hub writes timeout and expired).
_NODE_ANSWERED = ("ok", "refused", "failed")

HTTP = metrics.HttpMetrics(
    "hub",
    latency_help="HTTP request latency by route template (POST /v1/queries: what analysts wait).",
    buckets=(*metrics.LATENCY_BUCKETS, 60),
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
            "zCDP rho the nodes reported spent per agreement this budget period (the most any"
            " one node spent; parallel composition).",
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
            # The figure the pages show (hub.agreements.budget): what the nodes reported they
            # spent this period, summed exactly; the gauge carries the double nearest it.
            latest: dict[str, Any] = {}
            for agreement_id, terms in session.execute(
                select(AgreementVersion.agreement_id, AgreementVersion.terms).order_by(
                    AgreementVersion.version
                )
            ):
                latest[agreement_id] = terms
            for agreement_id, terms in sorted(latest.items()):
                by_node = agreement_budget.spent_by_node(
                    session, terms=AgreementTerms.model_validate(terms)
                )
                spent.add_metric([agreement_id], float(agreement_budget.spent(by_node)))
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
    HTTP.register(registry)
    registry.register(DatabaseCollector(sessions))
    return registry


def install(app: FastAPI, settings: HubSettings, sessions: sessionmaker[Session]) -> None:
    """`GET /metrics`, answered only with `Authorization: Bearer <HUB_METRICS_TOKEN>`."""
    metrics.install(
        app,
        http=HTTP,
        token=settings.metrics_token,
        registry=lambda: registry_for(sessions),
        refuse=lambda: Unauthenticated("metrics need the HUB_METRICS_TOKEN bearer token"),
    )
