"""The hub's database is the record of what is open: push deliveries lost with a stopped hub
(or a broker that lost its messages) are sent again by the sweeper, each node asked once, and
queries whose deadline passed with no timer left are found."""

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from hub_support import ANALYST_ORG, AppClient, Hub, RoutingTransport, SimNode

from contracts.v1 import QuerySpec
from hub.app import create_app
from hub.auth.schemas import User
from hub.db import init_db, make_engine
from hub.home import HubIdentity, load_key
from hub.queries import push as fanout
from hub.queries import service
from hub.settings import HubSettings

SPEC = QuerySpec(
    agreement_id="lnob-2026",
    dataset="lnob_household",
    measure="count",
    group_by=("sex",),
    rho=0.2,
)
ANALYST = User(name="ana", organisation=ANALYST_ORG, role="analyst")


@pytest.fixture
def agreed(federation: Hub) -> Hub:
    """Three push nodes party to an active agreement (the `federation` fixture)."""
    return federation


def record_without_dispatch(settings: HubSettings, identity: HubIdentity, ttl: int) -> str:
    """What a hub that stops right after recording a query leaves behind: pending tasks."""
    engine = make_engine(settings.effective_database_url)
    try:
        with init_db(engine)() as session:
            prepared = service.prepare_query(
                session=session,
                spec=SPEC,
                user=ANALYST,
                identity=identity,
                key=load_key(settings.home),
                ttl_seconds=ttl,
                max_ttl_seconds=settings.max_request_ttl_seconds,
            )
            return str(prepared.query_id)
    finally:
        engine.dispose()


@pytest.fixture
def restarted(
    agreed: Hub, hub_settings: HubSettings, sim_nodes: list[SimNode]
) -> Iterator[Callable[[], AppClient]]:
    """Start a second hub process on the same database, with a short resend delay."""
    clients: list[AppClient] = []

    def start() -> AppClient:
        settings = hub_settings.model_copy(update={"redispatch_seconds": 0.3})
        routes = {n.host: n.transport() for n in sim_nodes}
        client = AppClient(create_app(settings, transport=RoutingTransport(dict(routes))))
        clients.append(client)
        return client

    yield start
    for client in clients:
        client.close()


def test_deliveries_left_pending_by_a_stopped_hub_are_sent_again(
    agreed: Hub,
    hub_home: HubIdentity,
    sim_nodes: list[SimNode],
    restarted: Callable[[], AppClient],
) -> None:
    query_id = record_without_dispatch(agreed.settings, hub_home, ttl=120)
    assert all(node.calls == 0 for node in sim_nodes)
    hub = restarted()
    result = hub.get(
        f"/v1/queries/{query_id}", params={"wait": 30}, headers=agreed.headers("analyst")
    ).json()
    assert result["status"] == "complete"
    assert {n["outcome"] for n in result["nodes"]} == {"ok"}
    # Each node was asked once: a task is claimed before it is sent again.
    assert [node.calls for node in sim_nodes] == [1, 1, 1]


def test_a_claim_holds_for_the_resend_delay_and_passed_deadlines_are_found(
    agreed: Hub, hub_home: HubIdentity
) -> None:
    query_id = record_without_dispatch(agreed.settings, hub_home, ttl=120)
    engine = make_engine(agreed.settings.effective_database_url)
    try:
        with init_db(engine)() as session:
            later = datetime.now(UTC) + timedelta(seconds=60)
            claimed = fanout.claim_stale(session=session, older_than_seconds=30, now=later)
            assert sorted(n for q, n in claimed if q == query_id) == ["ke-a", "ke-b", "np-a"]
            # Claimed just now: not again until the resend delay has passed once more.
            again = fanout.claim_stale(session=session, older_than_seconds=30, now=later)
            assert again == []
            # A query whose deadline passed with no timer left to complete it.
            assert query_id in fanout.due_queries(session=session, now=later + timedelta(hours=1))
            assert query_id not in fanout.due_queries(session=session, now=datetime.now(UTC))
    finally:
        engine.dispose()
