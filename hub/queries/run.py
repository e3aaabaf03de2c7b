"""Submit a query and wait (a bounded time) for it: the async side of `hub.queries.service`."""

import asyncio
import functools
import time
from collections.abc import Callable
from functools import partial
from uuid import UUID, uuid4

import anyio.to_thread
import httpx
from joserfc.jwk import OKPKey
from sqlalchemy.orm import Session, sessionmaker

from contracts.v1 import QueryResult, QuerySpec
from hub.auth.schemas import User
from hub.home import HubIdentity
from hub.nodes import contracts
from hub.queries import service
from hub.queries.dispatch import Dispatcher
from hub.queries.signals import Signals, node_key, query_key, wait_event
from hub.settings import HubSettings


async def submit(
    *,
    sessions: sessionmaker[Session],
    dispatcher: Dispatcher,
    signals: Signals,
    settings: HubSettings,
    identity: HubIdentity,
    key: OKPKey,
    user: User | Callable[[], User],
    spec: QuerySpec,
    ttl_seconds: int | None,
    client: httpx.AsyncClient | None = None,
    query_id: UUID | None = None,
) -> UUID:
    """Every check runs before any query is sent; refusals raise and send nothing.

    `query_id`: the id to record the query under (default: a new one).

    With `client`, the contracts of push nodes the hub does not hold yet for the agreement's
    dataset version are fetched first (read only: nothing is asked of them but their
    public contracts), so the spec is checked against them too.

    `user` may be the check that gives it (blocking, see `once`): it then runs first in the
    prepare's thread hop, so checking the caller costs no hop of its own, and a refused
    caller is refused before anything is read or recorded.
    """
    check = once(user)
    fetching = client is not None and spec.module_version is None

    def prepare(*, look: bool) -> service.Prepared:
        """The prepared query, in one thread hop and one transaction; with `look`, it raises
        `ContractsMissing` instead if the hub lacks a push node's contract (then nothing is
        prepared)."""
        checked = check()
        with sessions() as session:
            return service.prepare_query(
                session=session,
                spec=spec,
                user=checked,
                identity=identity,
                key=key,
                ttl_seconds=ttl_seconds or settings.request_ttl_seconds,
                max_ttl_seconds=settings.max_request_ttl_seconds,
                query_id=query_id,
                fetch_missing=look,
            )

    try:
        prepared = await anyio.to_thread.run_sync(partial(prepare, look=fetching))
    except service.ContractsMissing as missing:
        assert client is not None
        await contracts.fetch_and_store(
            sessions=sessions,
            client=client,
            nodes=missing.nodes,
            timeout=min(settings.node_timeout_seconds, 5.0),
            skew_seconds=settings.node_clock_skew_seconds,
        )
        prepared = await anyio.to_thread.run_sync(partial(prepare, look=False))
    qid = str(prepared.query_id)
    if prepared.secure:
        await dispatcher.secure(query_id=qid, deadline=prepared.deadline)
        return prepared.query_id
    await dispatcher.dispatch(
        query_id=qid,
        push_nodes=prepared.push_nodes,
        deadline=prepared.deadline,
        calls=prepared.push_calls,
    )
    for node_id in prepared.pull_nodes:
        signals.notify(node_key(node_id))
    return prepared.query_id


async def submit_and_wait(
    *,
    sessions: sessionmaker[Session],
    dispatcher: Dispatcher,
    signals: Signals,
    settings: HubSettings,
    identity: HubIdentity,
    key: OKPKey,
    user: User | Callable[[], User],
    spec: QuerySpec,
    ttl_seconds: int | None,
    wait_seconds: float,
    client: httpx.AsyncClient | None = None,
) -> QueryResult:
    """`submit`, then its result once complete, or its progress after `wait_seconds`;
    `user` may be the check that gives it (see `once`).

    The query's signal is listened for before anything is sent, so no answer can be missed
    and nothing needs reading before the first signal; a query this process completed is
    served from the result it built then (committed first), without a thread hop or a read.
    """
    query_id = uuid4()
    check = once(user)
    with signals.listen(query_key(str(query_id))) as event:
        await submit(
            sessions=sessions,
            dispatcher=dispatcher,
            signals=signals,
            settings=settings,
            identity=identity,
            key=key,
            user=check,
            spec=spec,
            ttl_seconds=ttl_seconds,
            client=client,
            query_id=query_id,
        )
        return await _wait(
            event,
            sessions=sessions,
            signals=signals,
            settings=settings,
            query_id=query_id,
            user=check(),  # checked by `submit` already: no blocking here
            wait_seconds=wait_seconds,
            progress=None,
            submitter=True,
        )


async def wait_for(
    *,
    sessions: sessionmaker[Session],
    signals: Signals,
    settings: HubSettings,
    query_id: UUID,
    user: User | Callable[[], User],
    wait_seconds: float,
) -> QueryResult:
    """The result once complete, or its progress after `wait_seconds`; `user` may be the
    check that gives it (blocking, see `once`: it runs first in the first read's thread hop,
    as in `submit`)."""
    check = once(user)

    def first_read() -> QueryResult:
        return _read(sessions, query_id, check())

    with signals.listen(query_key(str(query_id))) as event:
        # Checked at once: the reader may not see this query (its organisation's, or a role
        # that reads all).
        result = await anyio.to_thread.run_sync(first_read)
        if result.status != "running":
            return result
        return await _wait(
            event,
            sessions=sessions,
            signals=signals,
            settings=settings,
            query_id=query_id,
            user=check(),  # checked by the first read already: no blocking here
            wait_seconds=wait_seconds,
            progress=result,
            submitter=False,
        )


def once(user: User | Callable[[], User]) -> Callable[[], User]:
    """The caller as a check that runs at most once: the routes pass the token's check
    (blocking: a database read) so that it runs in the first thread hop that needs the
    user, and later calls return the user it gave."""
    if isinstance(user, User):
        return lambda: user
    return functools.cache(user)


def _read(sessions: sessionmaker[Session], query_id: UUID, user: User) -> QueryResult:
    """The query as `user` may see it (progress or result), in one transaction."""
    with sessions() as session:
        return service.read_query(session=session, query_id=query_id, user=user)


async def _wait(
    event: asyncio.Event,
    *,
    sessions: sessionmaker[Session],
    signals: Signals,
    settings: HubSettings,
    query_id: UUID,
    user: User,
    wait_seconds: float,
    progress: QueryResult | None,
    submitter: bool,
) -> QueryResult:
    """Wait on `event` (listened for since before the query could progress) until the query
    is finished or `wait_seconds` pass; `progress`: what was read before waiting, if any."""
    give_up = time.monotonic() + wait_seconds

    def finished() -> QueryResult | None:
        """The result if the query no longer runs (one thread hop), else None: no result is
        built while answers are still arriving."""
        with sessions() as session:
            return service.finished_result(session=session, query_id=query_id, user=user)

    # (A query with no node to ask completed when it was recorded.)
    done = service.completed_here(query_id) if submitter else None
    waited = False
    while done is None and (remaining := give_up - time.monotonic()) > 0:
        poll = (
            settings.progress_fallback_seconds
            if signals.remote_progress
            else settings.progress_poll_seconds
        )
        await wait_event(event, min(poll, remaining))
        waited = True
        # Answers arrive in batches and each batch signals: check cheaply, and build the
        # result (progress combines what arrived) only when it is complete or time is up.
        done = service.completed_here(query_id) if submitter else None
        if done is None:
            done = await anyio.to_thread.run_sync(finished)
    if done is not None:
        return done
    if progress is None or waited:
        progress = await anyio.to_thread.run_sync(_read, sessions, query_id, user)
    return progress


async def view(
    *,
    sessions: sessionmaker[Session],
    signals: Signals,
    settings: HubSettings,
    query_id: UUID,
    user: User | Callable[[], User],
    wait_seconds: float,
) -> QueryResult:
    """`wait_for`, and a completed result's reading is logged (progress reads are not);
    `user` may be the check that gives it (see `once`)."""
    check = once(user)
    result = await wait_for(
        sessions=sessions,
        signals=signals,
        settings=settings,
        query_id=query_id,
        user=check,
        wait_seconds=wait_seconds,
    )
    if result.status != "running":

        def record() -> None:
            with sessions() as session:
                service.record_view(session=session, query_id=query_id, user=check())

        await anyio.to_thread.run_sync(record)
    return result
