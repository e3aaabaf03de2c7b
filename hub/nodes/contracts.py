"""Nodes' public dataset contracts at the hub: verified, stored per node and version, read.

A node signs its contracts with its own key (`GET /v1/contracts` at a push node; a pull
node posts the same document to the hub). The hub keeps each (node, dataset, version) it
has verified, fetches again when an agreement names a version it does not hold, and plans
queries against them (`hub.queries.planning.check_levels`).
"""

import logging
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, cast
from weakref import WeakKeyDictionary

import anyio
import anyio.to_thread
import httpx
from pydantic import ValidationError
from sqlalchemy import Table, bindparam, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from contracts import signing
from contracts.v1 import DatasetContract, PublishedContracts, Signed
from contracts.v1.base import utc
from hub.audit import service as audit
from hub.db import read_only
from hub.exceptions import HubError
from hub.nodes import service as registry
from hub.nodes.exceptions import NodeMessageRejected
from hub.nodes.models import Node, NodeContract
from hub.nodes.schemas import NodeContractRead
from runtime.memo import Memo

log = logging.getLogger("hub.federation")


def store_published(
    *, session: Session, token: str, skew_seconds: int, now: datetime | None = None
) -> list[tuple[str, int]]:
    """Verify a node's signed contracts and store every version not held yet (or changed).

    Returns the (dataset, version) pairs that were new or changed. A version the hub holds
    with the same digest is left alone, so fetching again is free and logs nothing.
    """
    now = now or datetime.now(UTC)
    node, published = registry.verify_node_message(
        session=session, token=token, model=PublishedContracts, now=now
    )
    if abs((utc(published.issued_at) - now).total_seconds()) > skew_seconds:
        # An old publication replayed must not bring back a contract the node since changed.
        raise NodeMessageRejected(
            "the message's issued_at is outside the allowed clock skew", code="message_stale"
        )
    kid = signing.unverified_header(token).get("kid", "")
    changed: list[tuple[str, int]] = []
    for info in published.datasets:
        contract = info.contract
        digest = signing.digest(contract)
        key = (node.node_id, contract.name, contract.version)
        row = session.get(NodeContract, key)
        if row is not None and row.digest == digest:
            continue
        values: dict[str, Any] = {
            "digest": digest,
            "contract": contract.model_dump(mode="json"),
            "kid": str(kid),
            "issued_at": published.issued_at,
            "received_at": now,
        }
        if row is None and not _inserted(session, key, values):
            # Another hub process stored it meanwhile (each fetches the contracts its own
            # queries need): theirs stands unless this publication differs from it.
            row = session.get(NodeContract, key, populate_existing=True)
            if row is None or row.digest == digest:
                continue
        if row is not None:
            for name, value in values.items():
                setattr(row, name, value)
        changed.append((contract.name, contract.version))
    if changed:
        session.flush()
        audit.append(
            session=session,
            actor=f"node:{node.node_id}",
            action="node.contracts_stored",
            object=f"node:{node.node_id}",
            details={"versions": [f"{name}:v{version}" for name, version in changed]},
        )
    session.commit()
    return changed


def _inserted(session: Session, key: tuple[str, str, int], values: dict[str, Any]) -> bool:
    """Insert the row; False if a concurrent transaction inserted the same key first."""
    node_id, dataset, version = key
    try:
        with session.begin_nested():
            session.add(NodeContract(node_id=node_id, dataset=dataset, version=version, **values))
    except IntegrityError:
        return False
    return True


def contracts_for(
    *, session: Session, node_ids: Iterable[str], dataset: str, version: int
) -> dict[str, DatasetContract]:
    """The stored contract of `dataset` at `version` for each node that published it.

    Read per query for every node it names: the rows' digests are read, and a contract is
    decoded and validated once per distinct digest in this process (nodes of one network
    mostly publish the same contract), not once per node per query."""
    ids = list(node_ids)
    if not ids:
        return {}
    found = session.connection().execute(
        _DIGESTS, {"b_node_ids": ids, "b_dataset": dataset, "b_version": version}
    )
    digests = {node_id: digest for node_id, digest in found.all()}  # noqa: C416 (Rows, not pairs)
    unknown = [node_id for node_id, digest in digests.items() if _parsed.peek(digest) is None]
    if unknown:
        rows = session.execute(
            select(NodeContract.digest, NodeContract.contract).where(
                NodeContract.node_id.in_(unknown),
                NodeContract.dataset == dataset,
                NodeContract.version == version,
            )
        )
        for digest, raw in rows:
            if _parsed.peek(digest) is None:
                try:
                    _parsed.put(digest, DatasetContract.model_validate(raw))
                except ValidationError:  # stored by an older hub under other rules: fetch again
                    continue
    out: dict[str, DatasetContract] = {}
    for node_id, digest in digests.items():
        contract = _parsed.peek(digest)
        if contract is not None:
            out[node_id] = contract
    return out


# Parsed contracts by digest (the digest the hub computed when it stored them): a stored
# contract is replaced only with a new digest (`store_published`), so a parsed copy never
# goes stale. Planning reads them on every query.
_parsed = Memo[str, DatasetContract](4096)


def missing(
    *, session: Session, node_ids: Iterable[str], dataset: str, version: int
) -> list[tuple[str, str]]:
    """Active push nodes among `node_ids` whose contract version the hub does not hold, with
    their URLs."""
    ids = list(node_ids)
    if not ids:
        return []
    rows = session.connection().execute(
        _MISSING, {"b_node_ids": ids, "b_dataset": dataset, "b_version": version}
    )
    return [(node_id, url) for node_id, url in rows]


# The query path's statements, built once (Core: no ORM compile step per query).
_NODES = cast(Table, Node.__table__)
_CONTRACTS = cast(Table, NodeContract.__table__)
_DIGESTS = select(_CONTRACTS.c.node_id, _CONTRACTS.c.digest).where(
    _CONTRACTS.c.node_id.in_(bindparam("b_node_ids", expanding=True)),
    _CONTRACTS.c.dataset == bindparam("b_dataset"),
    _CONTRACTS.c.version == bindparam("b_version"),
)
_MISSING = select(_NODES.c.node_id, _NODES.c.url).where(
    _NODES.c.node_id.in_(bindparam("b_node_ids", expanding=True)),
    _NODES.c.status == "active",
    _NODES.c.mode == "push",
    _NODES.c.url.is_not(None),
    _NODES.c.url != "",
    ~select(_CONTRACTS.c.node_id)
    .where(
        _CONTRACTS.c.node_id == _NODES.c.node_id,
        _CONTRACTS.c.dataset == bindparam("b_dataset"),
        _CONTRACTS.c.version == bindparam("b_version"),
    )
    .exists(),
)


# A node whose contracts could not be fetched is not asked again for this long (kept with
# the hub's node client, so per hub process): a dead node must not slow every page that
# offers its levels.
RETRY_AFTER_SECONDS = 60.0
FETCH_CONCURRENCY = 64
_failures: "WeakKeyDictionary[httpx.AsyncClient, dict[str, float]]" = WeakKeyDictionary()


async def fetch(
    *, client: httpx.AsyncClient, nodes: Sequence[tuple[str, str]], timeout: float
) -> dict[str, str]:
    """GET each push node's signed contracts, all at once: node id -> compact JWS (nodes that
    do not answer, or answered badly within RETRY_AFTER_SECONDS, are left out).

    Fetching is best effort: a node that does not answer is simply not checked against,
    and the query still goes to it (the node checks every query itself).
    """
    tokens: dict[str, str] = {}
    now = time.monotonic()
    failed_at = _failures.setdefault(client, {})

    async def one(node_id: str, url: str) -> None:
        try:
            response = await client.get(f"{url}/v1/contracts", timeout=timeout)
            if response.status_code == 200:
                tokens[node_id] = Signed.model_validate_json(response.content).jws
                failed_at.pop(node_id, None)
                return
        except (httpx.HTTPError, ValidationError) as exc:
            log.warning("contracts of %s not fetched: %s", node_id, type(exc).__name__)
        failed_at[node_id] = time.monotonic()

    due = [
        (n, u)
        for n, u in nodes
        if now - failed_at.get(n, -RETRY_AFTER_SECONDS) >= RETRY_AFTER_SECONDS
    ]
    # Bounded, like deliveries: the first query to 1,000 new nodes must not open 1,000
    # connections at once (and time them all out on a busy machine).
    limiter = anyio.CapacityLimiter(FETCH_CONCURRENCY)

    async def bounded(node_id: str, url: str) -> None:
        async with limiter:
            await one(node_id, url)

    async with anyio.create_task_group() as group:
        for node_id, url in due:
            group.start_soon(bounded, node_id, url)
    return tokens


def list_contracts(*, session: Session, node_id: str) -> list[NodeContractRead]:
    registry.get_node(session=session, node_id=node_id)  # 404 for an unknown node
    rows = session.scalars(
        select(NodeContract)
        .where(NodeContract.node_id == node_id)
        .order_by(NodeContract.dataset, NodeContract.version)
    )
    return [
        NodeContractRead(
            node_id=r.node_id,
            dataset=r.dataset,
            version=r.version,
            digest=r.digest,
            kid=r.kid,
            issued_at=r.issued_at,
            received_at=r.received_at,
            contract=r.contract,
        )
        for r in rows
    ]


async def refresh(
    *,
    sessions: sessionmaker[Session],
    client: httpx.AsyncClient | None,
    node_ids: Iterable[str],
    dataset: str,
    version: int,
    timeout: float,
    skew_seconds: int,
) -> None:
    """Fetch and store the contracts of push nodes that lack `dataset` at `version` (a node
    that published a new contract version is fetched again the first time it is named)."""
    if client is None:
        return
    ids = list(node_ids)

    def todo() -> list[tuple[str, str]]:
        with sessions() as session:
            read_only(session)
            return missing(session=session, node_ids=ids, dataset=dataset, version=version)

    nodes = await anyio.to_thread.run_sync(todo)
    await fetch_and_store(
        sessions=sessions, client=client, nodes=nodes, timeout=timeout, skew_seconds=skew_seconds
    )


async def fetch_and_store(
    *,
    sessions: sessionmaker[Session],
    client: httpx.AsyncClient,
    nodes: Sequence[tuple[str, str]],
    timeout: float,
    skew_seconds: int,
) -> None:
    """Fetch the contracts of `nodes` (id, URL) and store what verifies."""
    if not nodes:
        return
    tokens = await fetch(client=client, nodes=nodes, timeout=timeout)

    def keep() -> None:
        for node_id, token in tokens.items():
            with sessions() as session:
                try:
                    store_published(session=session, token=token, skew_seconds=skew_seconds)
                except HubError as exc:
                    log.warning("contracts of %s refused: %s", node_id, exc.code)

    await anyio.to_thread.run_sync(keep)
