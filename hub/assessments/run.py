"""Start a round (plan, refuse if unaffordable, then ask its queries through `hub.queries`)."""

import time
from uuid import UUID, uuid4

import anyio.to_thread
from joserfc.jwk import OKPKey
from sqlalchemy.orm import Session, sessionmaker

from hub.assessments import service
from hub.assessments.schemas import RoundCreate, RoundRead
from hub.auth.schemas import User
from hub.home import HubIdentity
from hub.queries import run as queries_run
from hub.queries.dispatch import Dispatcher
from hub.queries.signals import Signals
from hub.settings import HubSettings


async def start_round(
    *,
    sessions: sessionmaker[Session],
    dispatcher: Dispatcher,
    signals: Signals,
    settings: HubSettings,
    identity: HubIdentity,
    key: OKPKey,
    user: User,
    body: RoundCreate,
) -> str:
    """Every query is checked and costed before any is asked: an unaffordable round raises
    `RoundOverBudget` with nothing recorded, sent or charged."""

    def plan() -> service.Planned:
        with sessions() as session:
            planned = service.plan_round(session=session, body=body, user=user)
            service.check_affordable(planned)
            return planned

    planned = await anyio.to_thread.run_sync(plan)
    round_id = str(uuid4())

    def create() -> None:
        with sessions() as session:
            service.create_round(
                session=session, round_id=round_id, body=body, planned=planned, user=user
            )

    await anyio.to_thread.run_sync(create)
    try:
        await _submit_all(
            sessions=sessions,
            dispatcher=dispatcher,
            signals=signals,
            settings=settings,
            identity=identity,
            key=key,
            user=user,
            round_id=round_id,
            planned=planned,
        )
    except Exception:
        # Every query was checked beforehand, so this is an outage (database, broker): the
        # round is marked failed rather than left looking as if it were collecting.
        def fail() -> None:
            with sessions() as session:
                service.mark_failed(session=session, round_id=round_id)

        await anyio.to_thread.run_sync(fail)
        raise
    return round_id


async def _submit_all(
    *,
    sessions: sessionmaker[Session],
    dispatcher: Dispatcher,
    signals: Signals,
    settings: HubSettings,
    identity: HubIdentity,
    key: OKPKey,
    user: User,
    round_id: str,
    planned: service.Planned,
) -> None:
    for item in planned.queries:
        query_id = await queries_run.submit(
            sessions=sessions,
            dispatcher=dispatcher,
            signals=signals,
            settings=settings,
            identity=identity,
            key=key,
            user=user,
            spec=item.spec,
            ttl_seconds=None,
        )

        def record(item: service.PlannedQuery = item, query_id: UUID = query_id) -> None:
            with sessions() as session:
                service.record_query(
                    session=session, round_id=round_id, planned=item, query_id=query_id
                )

        await anyio.to_thread.run_sync(record)


async def wait_round(
    *,
    sessions: sessionmaker[Session],
    signals: Signals,
    settings: HubSettings,
    round_id: str,
    user: User,
    wait_seconds: float,
) -> RoundRead:
    """The round once its queries have finished, or its progress after `wait_seconds`."""
    give_up = time.monotonic() + wait_seconds

    def ids() -> list[str]:
        with sessions() as session:
            return service.round_query_ids(session=session, round_id=round_id)

    for query_id in await anyio.to_thread.run_sync(ids):
        remaining = give_up - time.monotonic()
        if remaining <= 0:
            break
        await queries_run.wait_for(
            sessions=sessions,
            signals=signals,
            settings=settings,
            query_id=UUID(query_id),
            user=user,
            wait_seconds=remaining,
        )

    def read() -> RoundRead:
        with sessions() as session:
            return service.read_round(session=session, round_id=round_id, user=user)

    return await anyio.to_thread.run_sync(read)
