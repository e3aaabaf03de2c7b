"""Analyst queries: check and plan, record one task per node, update the result as releases
arrive, and complete at the deadline with what arrived (never imputing the rest).

Every function here is synchronous and takes a session; the transport (push deliveries in
process or on a Celery worker, pull hand-outs) lives beside it in `hub.queries`.
"""

import json
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime, timedelta
from typing import Any, cast
from uuid import UUID, uuid4

from joserfc.jwk import OKPKey
from sqlalchemy import (
    Integer,
    Select,
    Table,
    bindparam,
    insert,
    literal_column,
    null,
    select,
    type_coerce,
    union_all,
    update,
)
from sqlalchemy.orm import Session, defer
from sqlalchemy.sql.elements import BindParameter

from contracts import signing
from contracts.v1 import (
    NodeStatus,
    QueryResult,
    QuerySpec,
    Release,
    ResultCell,
    SecureContribution,
)
from contracts.v1.result import NodeOutcome
from hub.agreements.service import active_version
from hub.audit import service as audit
from hub.auth.schemas import User
from hub.db import read_only
from hub.harmonisation.service import variable_answers
from hub.home import HubIdentity
from hub.nodes import contracts as node_contracts
from hub.nodes.models import Node
from hub.queries import progress
from hub.queries.calls import PushCall, planned_push_calls
from hub.queries.combine import (
    NodeAnswer,
    combine,
    release_guarantee,
    result_dims,
    result_grid,
    result_status,
)
from hub.queries.contract_check import check_levels
from hub.queries.exceptions import QueryNotFound, QueryOfOtherOrg, TtlTooLong
from hub.queries.models import QueryNodeRow, QueryRow
from hub.queries.planning import NodeTarget, check_spec, plan_query, select_targets
from hub.queries.releases import parsed_releases, sent_request, stored_payload_text
from hub.queries.schemas import QuerySummary
from hub.queries.secure_combine import (
    aggregate,
    contribution_guarantee,
    plan_aggregation,
    secure_cells,
)
from runtime.db import JsonText

log = logging.getLogger("hub.queries")
# Roles that may read every organisation's queries.
READ_ALL_ROLES = ("admin", "secretariat", "auditor")
TERMINAL = ("ok", "refused", "failed", "timeout", "expired")


@dataclass(frozen=True)
class Prepared:
    """A recorded query: which push nodes to deliver to, and when it completes regardless."""

    query_id: UUID
    push_nodes: tuple[str, ...]
    pull_nodes: tuple[str, ...]
    deadline: datetime
    # The push deliveries themselves, so the first dispatch needs no second read.
    push_calls: tuple[PushCall, ...] = ()
    # Secure aggregation: the nodes are run together by hub.queries.secure, not pushed.
    secure: bool = False


class ContractsMissing(Exception):
    """Push nodes (id, url) a query would ask whose contract the hub does not hold yet."""

    def __init__(self, nodes: tuple[tuple[str, str], ...]) -> None:
        super().__init__(f"{len(nodes)} node contracts to fetch")
        self.nodes = nodes


@dataclass(frozen=True, slots=True)
class TaskView:
    """What combining reads of a task, from plain columns (no ORM object per node)."""

    node_id: str
    country: str | None
    outcome: str
    error_code: str | None = None
    message: str | None = None
    release: dict[str, Any] | None = None
    release_jws: str | None = None
    # The release as this process verified and parsed it (`parsed_releases`), taken when the
    # task was read, so `release` need not be: the cache may evict it before `_build` runs.
    parsed: Release | None = None


Task = QueryNodeRow | TaskView


@dataclass(slots=True)
class QueryView:
    """What recording and combining read of a query row, from plain columns (a Core read
    under the row's lock): no ORM object, identity map or flush per recorded batch."""

    query_id: str
    organisation: str
    spec: dict[str, Any]
    status: str
    created_at: datetime
    deadline: datetime | None
    completed_at: datetime | None
    rules: dict[str, Any] | None


Query = QueryRow | QueryView


@dataclass(frozen=True, slots=True)
class _Completion:
    """A query completed in a transaction: remembered (`_completed`) once that commits."""

    query_id: str
    result: QueryResult
    # The result's JSON as stored, if it was written as text: also the response's body.
    body: bytes | None = None

    def remember(self) -> None:
        _completed.remember(self.query_id, self.result, self.body)


def prepare_query(
    *,
    session: Session,
    spec: QuerySpec,
    user: User,
    identity: HubIdentity,
    key: OKPKey,
    ttl_seconds: int,
    max_ttl_seconds: int,
    query_id: UUID | None = None,
    now: datetime | None = None,
    fetch_missing: bool = False,
) -> Prepared:
    """Check the spec, sign one request per node, record the query and its pending tasks.

    `fetch_missing`: raise `ContractsMissing` (nothing recorded) if a push node it would ask
    has no stored contract for the agreement's dataset version, so the caller can fetch them
    first. Found from the contracts the level check reads anyway: no statement of its own."""
    if ttl_seconds > max_ttl_seconds:
        raise TtlTooLong(max_ttl_seconds)
    terms, digest = active_version(session=session, agreement_id=spec.agreement_id)
    check_spec(spec=spec, terms=terms, organisation=user.organisation)
    nodes = session.connection().execute(_ACTIVE_NODES, {"b_node_ids": list(terms.node_ids)}).all()
    modes = {n.node_id: n.mode for n in nodes}
    targets = select_targets(
        spec=spec,
        terms=terms,
        nodes=[
            NodeTarget(node_id=n.node_id, country=n.country, url=n.url, public_jwk=n.public_jwk)
            for n in nodes
        ],
    )
    if spec.module_version is None:
        contracts = node_contracts.contracts_for(
            session=session,
            node_ids=[t.node_id for t in targets],
            dataset=spec.dataset,
            version=next(d.contract_version for d in terms.datasets if d.name == spec.dataset),
        )
        if fetch_missing and (
            lacking := tuple(
                (t.node_id, t.url)
                for t in targets
                if t.node_id not in contracts and modes.get(t.node_id) == "push" and t.url
            )
        ):
            raise ContractsMissing(lacking)
        # A level no node's contract knows never leaves the hub (no node called, no budget).
        check_levels(spec=spec, contracts=contracts)
    now = now or datetime.now(UTC)
    aggregation = plan_aggregation(
        terms=terms, spec=spec, modes=[modes.get(t.node_id, "push") for t in targets]
    )
    plan = plan_query(
        query_id=query_id or uuid4(),
        spec=spec,
        terms=terms,
        agreement_digest=digest,
        targets=targets,
        hub_id=identity.hub_id,
        key=key,
        now=now,
        ttl_seconds=ttl_seconds,
        # The node checks the agreement's analyst organisations itself and records who spent.
        analyst=user.name,
        analyst_organisation=user.organisation,
        # A secure query's requests are bound to the secure routes (never answered plainly).
        aggregation="secure" if aggregation.secure else "per_node",
    )
    qid = str(plan.query_id)
    deadline = now + timedelta(seconds=ttl_seconds)
    # A module query's releases carry the module version where a dataset's carry its contract's.
    contract_version = spec.module_version or next(
        d.contract_version for d in terms.datasets if d.name == spec.dataset
    )
    row = QueryView(
        query_id=qid,
        organisation=user.organisation,
        spec=spec.model_dump(mode="json"),
        status="running",
        created_at=now,
        deadline=deadline,
        completed_at=None,
        rules={
            "min_cell_size": terms.min_cell_size,
            "max_ci_relative_width": terms.max_ci_relative_width,
            "contract_version": contract_version,
            "aggregation": "secure" if aggregation.secure else "per_node",
            "aggregation_note": aggregation.note,
        },
    )
    modes_sent = {
        call.target.node_id: "secure"
        if aggregation.secure
        else modes.get(call.target.node_id, "push")
        for call in plan.calls
    }
    tasks = [
        TaskView(node_id=call.target.node_id, country=call.target.country, outcome="pending")
        for call in plan.calls
    ]
    audit.append(
        session=session,
        actor=f"user:{user.name}",
        action="query.submitted",
        object=f"query:{qid}",
        details={
            "organisation": user.organisation,
            "agreement": f"{terms.agreement_id}:v{terms.version}",
            "dataset": spec.dataset,
            "measure": spec.measure,
            "column": spec.column,
            "group_by": list(spec.group_by),
            "filter_columns": [f.column for f in spec.filters],
            "rho": spec.rho,
            "aggregation": "secure" if aggregation.secure else "per_node",
            "nodes": [c.target.node_id for c in plan.calls],
            "deadline": deadline.isoformat(),
        },
    )
    result, completion = _settle(session, row, tasks, now=now)
    # The query and its tasks go in as they stand now, in one INSERT each (Core, from plain
    # values: no ORM object, unit of work or flush).
    connection = session.connection()
    connection.execute(
        _INSERT_QUERY,
        {
            **{f.name: getattr(row, f.name) for f in fields(QueryView)},
            "analyst": user.name,
            "agreement_id": terms.agreement_id,
            "agreement_version": terms.version,
            "result": result.model_dump_json(),
        },
    )
    if plan.calls:  # (an empty parameter list would insert one row of defaults)
        # Plain rows, one executemany (no ORM object per node); combining reads `TaskView`s.
        connection.execute(
            _INSERT_TASKS,
            [
                {
                    "query_id": qid,
                    "node_id": call.target.node_id,
                    "country": call.target.country,
                    "mode": modes_sent[call.target.node_id],
                    "outcome": "pending",
                    "request_jws": call.jws,
                    "expires_at": call.request.expires_at,
                    "attempts": 0,
                }
                for call in plan.calls
            ],
        )
    session.commit()
    if completion is not None:  # no node to ask: complete at once
        completion.remember()
    if aggregation.secure:
        return Prepared(
            query_id=plan.query_id, push_nodes=(), pull_nodes=(), deadline=deadline, secure=True
        )
    return Prepared(
        query_id=plan.query_id,
        push_nodes=tuple(n for n, mode in modes_sent.items() if mode != "pull"),
        pull_nodes=tuple(n for n, mode in modes_sent.items() if mode == "pull"),
        deadline=deadline,
        push_calls=planned_push_calls(
            query_id=qid,
            calls=plan.calls,
            nodes=nodes,
            contract_version=int(contract_version) if contract_version is not None else None,
            deadline=deadline,
            now=now,
        ),
    )


# Built once: the agreement's active nodes, as plain rows of what planning and deliveries read
# (their keys included: no ORM object per node); a new query and its tasks, each as one INSERT.
_NODES = cast(Table, Node.__table__)
_ACTIVE_NODES = select(
    *(
        _NODES.c[name]
        for name in (
            "node_id",
            "country",
            "url",
            "mode",
            "status",
            "kid",
            "public_jwk",
            "previous_kid",
            "previous_jwk",
            "previous_valid_until",
        )
    )
).where(_NODES.c.node_id.in_(bindparam("b_node_ids", expanding=True)), _NODES.c.status == "active")
_TASKS = cast(Table, QueryNodeRow.__table__)
_INSERT_QUERY = insert(cast(Table, QueryRow.__table__)).values(
    # The result's JSON text, bound as is (`JsonText`), not dumped to a dict and encoded.
    result=type_coerce(bindparam("result"), JsonText())
)
_INSERT_TASKS = insert(_TASKS)


def _locked_query(session: Session, query_id: str) -> QueryRow:
    # One writer per query at a time (FOR UPDATE on PostgreSQL; SQLite's BEGIN IMMEDIATE
    # already serialises), so concurrent arrivals never overwrite each other's result. The
    # stored result (one status per node) is only ever replaced here, never read: deferred.
    row = session.get(
        QueryRow,
        query_id,
        with_for_update=True,
        populate_existing=True,
        options=[defer(QueryRow.result)],
    )
    if row is None:
        raise QueryNotFound()
    return row


def _tasks(session: Session, query_id: str, *, releases: bool = True) -> list[QueryNodeRow]:
    """The query's tasks; `releases=False` leaves the stored releases unread (deferred), for
    bookkeeping that does not combine: recording N arrivals in batches then reads O(N)
    release payloads in all, not one full set per batch."""
    statement = select(QueryNodeRow).where(QueryNodeRow.query_id == query_id)
    if not releases:
        statement = statement.options(defer(QueryNodeRow.release), defer(QueryNodeRow.release_jws))
    return list(
        session.scalars(
            statement.order_by(QueryNodeRow.id).execution_options(populate_existing=True)
        )
    )


@dataclass(frozen=True)
class Outcome:
    """One node's answer (or failure) to one query, ready to be recorded."""

    query_id: str
    node_id: str
    outcome: NodeOutcome
    error_code: str | None = None
    message: str | None = None
    release: Release | None = None
    release_jws: str | None = None
    attempts: int | None = None
    # The verified payload of `release_jws` as text, if the verifier has it (else decoded).
    release_json: str | None = None


def record_outcomes(
    *, session: Session, outcomes: list[Outcome], now: datetime | None = None
) -> list[bool]:
    """Record answers that arrived together in one transaction (group commit).

    The batch's query rows are locked in one statement, in query-id order (the one order
    every writer takes them in, before the audit head: two processes recording batches that
    share queries never each hold what the other waits for); the batch's open tasks, which
    queries stay pending and which had tasks closed before are read in one statement,
    whatever the number of queries and answers (a query whose tasks all close in the batch
    is combined from what that statement read). The verified release is stored with its
    task at once and progress reads combine what has arrived; the combined result itself
    is written when a query's last task closes, so N arrivals cost O(N) work, not O(N^2),
    under the query's lock. The audit entries of the whole batch are appended last, in one
    statement right before the commit: the head, which every writer of the hub shares, is
    held for that append and the commit only, not for the reads and the combining."""
    now = now or datetime.now(UTC)
    by_query: dict[str, list[int]] = {}
    for index, item in enumerate(outcomes):
        by_query.setdefault(item.query_id, []).append(index)
    stored = [False] * len(outcomes)
    rows = _locked_queries(session, sorted(by_query))
    # Only the batch's own open tasks, without their payloads, in one statement: a query of N
    # nodes answered in B batches reads N task rows in all, not N per batch. (A superset
    # filter, narrowed here: portable where row-value IN is not.)
    # The same statement says which queries have a pending task of a node outside the batch
    # (read after the query rows' locks are held: a fresh snapshot, not one taken before the
    # wait), so which complete is known without a statement of its own (see `pending`).
    # And which have a task closed before this batch: a query with none, completed here,
    # is combined from the tasks read here, without reading its tasks again.
    open_tasks, pending, closed_before = _open_tasks(session, outcomes, list(by_query))
    closed_here: dict[str, list[tuple[int, TaskView, str | None]]] = {}
    events_by_query: dict[str, list[audit.Event]] = {query_id: [] for query_id in by_query}
    plain: list[dict[str, Any]] = []
    answered: list[dict[str, Any]] = []
    for index, item in enumerate(outcomes):
        # Popped: a second answer from the same node in this batch finds its task closed.
        task = open_tasks.pop((item.query_id, item.node_id), None)
        if task is None:
            continue  # a duplicate, or an answer after the deadline: nothing stored
        stored[index] = True
        params = _close_params(task.id, task.attempts, task.sent_at, item, now=now)
        release_text = None
        if item.release is not None and item.release_jws is not None:
            params["b_release_jws"] = item.release_jws
            params["b_release"] = release_text = item.release_json or stored_payload_text(
                item.release_jws
            )
            answered.append(params)
            parsed_releases.remember(item.query_id, item.node_id, item.release)
        else:
            plain.append(params)
        # The task as `_tasks_to_combine` would read it back once this batch's UPDATE ran.
        closed = TaskView(
            node_id=item.node_id,
            country=task.country,
            outcome=item.outcome,
            error_code=item.error_code,
            message=item.message,
        )
        closed_here.setdefault(item.query_id, []).append((task.id, closed, release_text))
        events_by_query[item.query_id].append(
            _outcome_event(item.query_id, item.node_id, item.outcome, item.error_code)
        )
    # Core executemany, one per kind of outcome: no ORM object per node.
    for statement, params_list in ((_CLOSE, plain), (_CLOSE_WITH_RELEASE, answered)):
        if params_list:
            session.connection().execute(statement, params_list)
    # Every open task the batch answers is closed now (the query rows are locked): a query
    # stays pending only through a task `_OPEN_TASKS` showed the batch does not close.
    changed = [query_id for query_id, events in events_by_query.items() if events]
    completions = []
    for query_id in changed:
        if query_id not in pending:
            # The last task closed: combine every stored release.
            row = rows[query_id]
            secure = (row.rules or {}).get("aggregation") == "secure"
            tasks = (
                _closed_here(query_id, closed_here[query_id])
                if query_id not in closed_before and not secure
                else _tasks_to_combine(session, row)
            )
            completion = _refresh(session, row, tasks, now=now, events=events_by_query[query_id])
            if completion is not None:
                completions.append(completion)
    audit.append_many(session=session, events=[e for q in by_query for e in events_by_query[q]])
    progress.announce(session, changed)
    session.commit()
    for completion in completions:
        completion.remember()
    return stored


def _open_tasks(
    session: Session, outcomes: list[Outcome], query_ids: list[str]
) -> tuple[dict[tuple[str, str], Any], set[str], set[str]]:
    """`_OPEN_TASKS` read: the open tasks the batch answers, by (query, node); the queries
    that stay pending whatever the batch closes; the queries with a task closed before."""
    wanted = {(item.query_id, item.node_id) for item in outcomes}
    open_tasks: dict[tuple[str, str], Any] = {}
    pending: set[str] = set()
    closed_before: set[str] = set()
    for task in session.connection().execute(
        _OPEN_TASKS,
        {
            "b_query_ids": query_ids,
            "b_node_ids": list({item.node_id for item in outcomes}),
        },
    ):
        if task.id is None and task.flag == _CLOSED_BEFORE:
            closed_before.add(task.query_id)
        elif task.id is None or (task.query_id, task.node_id) not in wanted:
            # Another node's pending task, or one of a batch node this query's answers
            # did not come from: the query stays open.
            pending.add(task.query_id)
        else:
            open_tasks[(task.query_id, task.node_id)] = task
    return open_tasks, pending, closed_before


def _closed_here(query_id: str, closed: list[tuple[int, TaskView, str | None]]) -> list[Task]:
    """A query's tasks when this batch closed every one of them: as `_tasks_to_combine`
    reads them (in task order, the stored release of an answer not parsed here)."""
    parsed = parsed_releases.of(query_id)
    tasks: list[Task] = []
    for _, view, release_text in sorted(closed, key=lambda found: found[0]):
        held = parsed.get(view.node_id) if view.outcome == "ok" else None
        if held is not None:
            tasks.append(replace(view, parsed=held))
        elif view.outcome == "ok" and release_text is not None:
            tasks.append(replace(view, release=json.loads(release_text)))
        else:
            tasks.append(view)
    return tasks


_CLOSE_VALUES = {
    "outcome": bindparam("b_outcome"),
    "error_code": bindparam("b_error_code"),
    "message": bindparam("b_message"),
    "answered_at": bindparam("b_answered_at", type_=_TASKS.c.answered_at.type),
    "attempts": bindparam("b_attempts"),
    "sent_at": bindparam("b_sent_at", type_=_TASKS.c.sent_at.type),
}
# Only a pending task takes an outcome (the query row is locked, so this is belt and braces).
_CLOSE = (
    update(_TASKS)
    .where(_TASKS.c.id == bindparam("b_id"), _TASKS.c.outcome == "pending")
    .values(_CLOSE_VALUES)
)
_CLOSE_WITH_RELEASE = _CLOSE.values(
    release_jws=bindparam("b_release_jws"),
    # The verified payload is the release's canonical JSON: stored as that text, not parsed
    # and serialised again.
    release=type_coerce(bindparam("b_release"), JsonText()),
)


def _close_params(
    task_id: int, attempts: int, sent_at: datetime | None, item: Outcome, *, now: datetime
) -> dict[str, Any]:
    """`_CLOSE`'s parameters for the open task `item` answers."""
    return {
        "b_id": task_id,
        "b_outcome": item.outcome,
        "b_error_code": item.error_code,
        "b_message": item.message,
        "b_answered_at": now,
        "b_attempts": attempts + (item.attempts or 0),
        "b_sent_at": sent_at or now if item.attempts is not None else sent_at,
    }


def _outcome_event(
    query_id: str, node_id: str, outcome: str, error_code: str | None
) -> audit.Event:
    """The audit entry of a node's task closing (an answer, a failure, the deadline)."""
    return audit.Event(
        actor="hub",
        action="query.node_outcome",
        object=f"query:{query_id}",
        details={"node": node_id, "outcome": outcome, "error_code": error_code},
    )


def _locked_queries(session: Session, query_ids: list[str]) -> dict[str, QueryView]:
    """`_locked_query` for several queries in one prebuilt Core statement, locked in
    `query_ids` order (sorted by the caller: the order every writer locks query rows in)."""
    rows = {
        row.query_id: QueryView(**row._asdict())
        for row in session.connection().execute(_LOCK_QUERIES, {"b_query_ids": query_ids})
    }
    if len(rows) != len(query_ids):
        raise QueryNotFound()
    return rows


_QUERIES = cast(Table, QueryRow.__table__)
# The stored result (one status per node) is only ever replaced, never read, here.
_LOCK_QUERIES = (
    select(*(_QUERIES.c[f.name] for f in fields(QueryView)))
    .where(_QUERIES.c.query_id.in_(bindparam("b_query_ids", expanding=True)))
    .order_by(_QUERIES.c.query_id)
    .with_for_update()
)
_UPDATE_QUERY = (
    update(_QUERIES)
    .where(_QUERIES.c.query_id == bindparam("b_query_id"))
    .values(
        status=bindparam("b_status"),
        result=type_coerce(bindparam("b_result"), JsonText()),
        completed_at=bindparam("b_completed_at", type_=_QUERIES.c.completed_at.type),
    )
)


# Built once (Core, expanding IN lists): the statements every recorded batch runs.
_B_QUERY_IDS: BindParameter[Any] = bindparam("b_query_ids", expanding=True)
_B_NODE_IDS: BindParameter[Any] = bindparam("b_node_ids", expanding=True)
_OTHERS = _TASKS.alias("others")
_PENDING_ELSEWHERE, _CLOSED_BEFORE = 1, 2


def _queries_flagged(flag: int, *task_conditions: Any) -> Select[Any]:
    """One row (id NULL, `flag`) per batch query that has a task meeting `task_conditions`
    (once per query, not per task), in `_OPEN_TASKS`' columns."""
    return select(
        null().label("id"),
        _QUERIES.c.query_id,
        null().label("node_id"),
        null().label("attempts"),
        null().label("sent_at"),
        null().label("country"),
        literal_column(str(flag), Integer).label("flag"),
    ).where(
        _QUERIES.c.query_id.in_(_B_QUERY_IDS),
        select(_OTHERS.c.id)
        .where(_OTHERS.c.query_id == _QUERIES.c.query_id, *task_conditions)
        .exists(),
    )


# The batch's queries' pending tasks of the batch's nodes; then the queries that also have a
# pending task of a node outside the batch, and those with a task closed before this batch.
_OPEN_TASKS = union_all(
    select(
        _TASKS.c.id,
        _TASKS.c.query_id,
        _TASKS.c.node_id,
        _TASKS.c.attempts,
        _TASKS.c.sent_at,
        _TASKS.c.country,
        literal_column("0", Integer).label("flag"),
    ).where(
        _TASKS.c.query_id.in_(_B_QUERY_IDS),
        _TASKS.c.node_id.in_(_B_NODE_IDS),
        _TASKS.c.outcome == "pending",
    ),
    _queries_flagged(
        _PENDING_ELSEWHERE, _OTHERS.c.outcome == "pending", _OTHERS.c.node_id.not_in(_B_NODE_IDS)
    ),
    _queries_flagged(_CLOSED_BEFORE, _OTHERS.c.outcome != "pending"),
)
_TASK_COLUMNS = (
    _TASKS.c.id,
    _TASKS.c.node_id,
    _TASKS.c.country,
    _TASKS.c.outcome,
    _TASKS.c.error_code,
    _TASKS.c.message,
)
_QUERY_TASKS = {
    secure: select(*_TASK_COLUMNS, *([_TASKS.c.release_jws] if secure else []))
    .where(_TASKS.c.query_id == bindparam("b_query_id"))
    .order_by(_TASKS.c.id)
    for secure in (False, True)
}
_STORED_RELEASES = select(_TASKS.c.id, _TASKS.c.release).where(
    _TASKS.c.id.in_(bindparam("b_ids", expanding=True))
)


def _tasks_to_combine(session: Session, row: Query) -> list[Task]:
    """The query's tasks for `_build`, as plain `TaskView`s read by one Core statement: a
    per-node query's stored releases are read only for the answers this process has not
    verified and parsed itself (parsed_releases); a secure query's signed contributions are."""
    secure = (row.rules or {}).get("aggregation") == "secure"
    connection = session.connection()
    rows = connection.execute(_QUERY_TASKS[secure], {"b_query_id": row.query_id}).all()
    releases: dict[int, dict[str, Any] | None] = {}
    parsed = {} if secure else parsed_releases.of(row.query_id)
    unparsed = [r.id for r in rows if not secure and r.outcome == "ok" and r.node_id not in parsed]
    for chunk in range(0, len(unparsed), 500):
        stored = connection.execute(_STORED_RELEASES, {"b_ids": unparsed[chunk : chunk + 500]})
        releases.update(dict(stored.all()))
    return [
        TaskView(
            node_id=r.node_id,
            country=r.country,
            outcome=r.outcome,
            error_code=r.error_code,
            message=r.message,
            release=releases.get(r.id),
            release_jws=r.release_jws if secure else None,
            parsed=parsed.get(r.node_id) if r.outcome == "ok" else None,
        )
        for r in rows
    ]


def finalize_due(*, session: Session, query_id: str, now: datetime | None = None) -> bool:
    """At (or after) the deadline, close every pending task and complete the query."""
    now = now or datetime.now(UTC)
    row = _locked_query(session, query_id)
    if row.status != "running" or row.deadline is None or row.deadline > now:
        session.rollback()
        return False
    tasks = _tasks(session, query_id)
    events: list[audit.Event] = []
    for task in tasks:
        if task.outcome != "pending":
            continue
        if task.mode == "pull" and task.sent_at is None:
            task.outcome, task.error_code = "expired", "task_expired"
            task.message = "the node did not collect the task before it expired"
        else:
            task.outcome, task.error_code = "timeout", "node_timeout"
            task.message = "the node did not answer before the deadline"
        task.answered_at = now
        events.append(_outcome_event(query_id, task.node_id, task.outcome, task.error_code))
    completion = _refresh(session, row, tasks, now=now, events=events)
    # The shared audit head is locked for the append and the commit only.
    audit.append_many(session=session, events=events)
    progress.announce(session, [query_id])
    session.commit()
    if completion is not None:
        completion.remember()
    return True


def _refresh(
    session: Session,
    row: Query,
    tasks: Sequence[Task],
    *,
    now: datetime,
    events: list[audit.Event] | None = None,
) -> _Completion | None:
    """Recombine what has arrived and store it; complete the query once no task is pending.

    With `events`, the completion's audit entry is added there (the caller appends it with
    the rest of its transaction's entries), else appended at once. A completion is returned
    for the caller to remember once its transaction commits (so a result served from this
    process's memory is always one the database holds)."""
    result, completion = _settle(session, row, tasks, now=now, events=events)
    if isinstance(row, QueryRow):
        row.result = result.model_dump(mode="json")
        return completion
    # A Core UPDATE (the row was read under its lock by `_locked_queries`); the result's
    # JSON is written once, as text, and kept as the response's body.
    body = result.model_dump_json().encode()
    session.connection().execute(
        _UPDATE_QUERY,
        {
            "b_query_id": row.query_id,
            "b_status": row.status,
            "b_result": body.decode(),
            "b_completed_at": row.completed_at,
        },
    )
    return None if completion is None else _Completion(row.query_id, result, body)


def _settle(
    session: Session,
    row: Query,
    tasks: Sequence[Task],
    *,
    now: datetime,
    events: list[audit.Event] | None = None,
) -> tuple[QueryResult, _Completion | None]:
    """`_refresh` up to writing the result: `row`'s status and completion time set, the
    result built, the completion's audit entry added (see `_refresh`)."""
    pending = any(t.outcome == "pending" for t in tasks)
    if not pending and row.completed_at is None:
        row.completed_at = now
    result = _safe_build(row, tasks)
    if not pending:
        completed = audit.Event(
            actor="hub",
            action="query.completed",
            object=f"query:{row.query_id}",
            details={
                "status": result.status,
                "answered": sum(1 for t in tasks if t.outcome == "ok"),
                "asked": len(tasks),
            },
        )
        if events is None:
            audit.append_many(session=session, events=[completed])
        else:
            events.append(completed)
    row.status = result.status
    if pending:
        return result, None
    # Combined: its parsed releases are not read again (should this transaction not commit,
    # the next combining parses the stored ones).
    parsed_releases.forget(row.query_id)
    return result, _Completion(row.query_id, result)


def _safe_build(row: Query, tasks: Sequence[Task]) -> QueryResult:
    """`_build`, or, when the verified answers cannot be combined (a node's release that is
    signed and answers the request but whose cells do not add up), the result without cells
    and status `failed`: one poisoned release must not stop its query from completing, nor
    fail every read and every sweep of it again."""
    try:
        return _build(row, tasks)
    except Exception as exc:
        log.error(
            "query %s: the answers could not be combined (%s)", row.query_id, type(exc).__name__
        )
        return _uncombined(row, tasks)


def _uncombined(row: Query, tasks: Sequence[Task]) -> QueryResult:
    pending = any(t.outcome == "pending" for t in tasks)
    return QueryResult(
        query_id=UUID(row.query_id),
        spec=QuerySpec.model_validate(row.spec),
        group_by=(),
        status="running" if pending else "failed",
        nodes=tuple(
            NodeStatus(
                node_id=t.node_id,
                country=t.country,
                outcome=t.outcome,
                error_code=t.error_code,
                message=t.message,
            )
            for t in tasks
        ),
        cells=(),
        aggregation_note="the nodes' answers could not be combined; no cells are shown",
        created_at=row.created_at,
        deadline=row.deadline if row.deadline is not None else None,
        completed_at=row.completed_at if row.completed_at is not None else None,
    )


def _build(row: Query, tasks: Sequence[Task]) -> QueryResult:
    """The result as the tasks stand: combined over the nodes that answered, none imputed."""
    spec = QuerySpec.model_validate(row.spec)
    rules: dict[str, Any] = row.rules or {}
    parsed = parsed_releases.of(row.query_id)
    answers = [
        NodeAnswer(node_id=t.node_id, country=t.country or "", release=release)
        for t in tasks
        if t.outcome == "ok" and (release := _release(parsed, t)) is not None
    ]
    secure = rules.get("aggregation") == "secure"
    contributions = [
        SecureContribution.model_validate_json(signing.unverified_payload(t.release_jws))
        for t in tasks
        if secure and t.outcome == "ok" and t.release_jws is not None
    ]
    answered = len(contributions) if secure else len(answers)
    pending = any(t.outcome == "pending" for t in tasks)
    status = "running" if pending else result_status(asked=len(tasks), answered=answered)
    guarantees = {a.node_id: release_guarantee(a.release) for a in answers}
    guarantees.update({c.node_id: contribution_guarantee(c) for c in contributions})
    nodes = tuple(
        NodeStatus(
            node_id=t.node_id,
            country=t.country,
            outcome=t.outcome,
            error_code=t.error_code,
            message=t.message,
            **(guarantees.get(t.node_id, {}) if t.outcome == "ok" else {}),
        )
        for t in tasks
    )
    grid, resolution = result_grid(spec, answers)
    return QueryResult(
        query_id=UUID(row.query_id),
        spec=spec,
        group_by=result_dims(spec),
        status=status,
        nodes=nodes,
        variables=variable_answers(spec, nodes),
        cells=_cells(spec, rules, answers, contributions),
        aggregation="secure" if secure else "per_node",
        aggregation_note=_aggregation_note(rules),
        grid=grid,
        grid_resolution=resolution,
        created_at=row.created_at,
        deadline=row.deadline if row.deadline is not None else None,
        completed_at=row.completed_at if row.completed_at is not None else None,
    )


def _release(parsed: dict[str, Release], task: Task) -> Release | None:
    """A task's verified release: parsed here already (taken with the task when it was read,
    or `parsed`: the query's, from `parsed_releases.of`), else parsed from what is stored."""
    found = task.parsed if isinstance(task, TaskView) else None
    if found is None:
        found = parsed.get(task.node_id)
    if found is not None:
        return found
    return None if task.release is None else Release.model_validate(task.release)


def _cells(
    spec: QuerySpec,
    rules: dict[str, Any],
    answers: list[NodeAnswer],
    contributions: list[SecureContribution],
) -> tuple[ResultCell, ...]:
    min_cell_size = int(rules.get("min_cell_size", 0))
    max_ci_relative_width = rules.get("max_ci_relative_width")
    if rules.get("aggregation") != "secure":
        return combine(
            spec=spec,
            answers=answers,
            min_cell_size=min_cell_size,
            max_ci_relative_width=max_ci_relative_width,
        )
    if not contributions:
        return ()
    # Checked when the attempt completed (hub.queries.secure): they add up.
    return secure_cells(
        aggregate(contributions),
        min_cell_size=min_cell_size,
        max_ci_relative_width=max_ci_relative_width,
    )


def _aggregation_note(rules: dict[str, Any]) -> str | None:
    note: str | None = rules.get("aggregation_note")
    attempts = rules.get("secure_attempts")
    if rules.get("aggregation") != "secure" or not attempts:
        return note
    if not rules.get("secure_completed"):
        return f"secure aggregation did not complete after {attempts} attempt(s)"
    done = f"secure aggregation: the hub learnt only the sum; {attempts} attempt(s)"
    return f"{done}, each charged at the nodes that contributed to it"


def settle_secure(
    *,
    session: Session,
    query_id: str,
    contributions: dict[str, str],
    failures: dict[str, tuple[str, str, str]],
    attempts: int,
    fallback: str | None,
    fallback_request: str | None = None,
    now: datetime | None = None,
) -> None:
    """Close a secure query's tasks: members whose contribution made the sum are `ok` (their
    signed contributions kept as the record), dropped nodes carry why. With `fallback`, the
    remaining pending task becomes an ordinary push task that sends `fallback_request` (a
    plain request under a derived query id: hub.queries.secure.per_node_request), and the
    query goes on per node; the hub's chain records the id the node will charge."""
    now = now or datetime.now(UTC)
    row = _locked_query(session, query_id)
    if row.status != "running":
        session.rollback()
        return
    tasks = _tasks(session, query_id)
    events: list[audit.Event] = []
    for task in tasks:
        if task.outcome != "pending" or task.mode != "secure":
            continue
        task.attempts = attempts
        if task.node_id in failures:
            task.outcome, task.error_code, task.message = failures[task.node_id]
        elif task.node_id in contributions:
            task.outcome, task.error_code, task.message = "ok", None, None
            task.release_jws = contributions[task.node_id]
        elif fallback is not None:
            task.mode = "push"
            if fallback_request is not None:
                task.request_jws = fallback_request
                plain = sent_request(fallback_request)
                events.append(
                    audit.Event(
                        actor="hub",
                        action="query.per_node_fallback",
                        object=f"query:{query_id}",
                        details={
                            "node": task.node_id,
                            "node_query_id": str(plain.query_id),
                            "rho": plain.rho,
                        },
                    )
                )
            continue
        else:
            task.outcome, task.error_code = "failed", "secure_not_completed"
            task.message = "secure aggregation did not complete"
        task.answered_at = now
        events.append(
            audit.Event(
                actor="hub",
                action="query.node_outcome",
                object=f"query:{query_id}",
                details={
                    "node": task.node_id,
                    "outcome": task.outcome,
                    "error_code": task.error_code,
                    "aggregation": "secure",
                    "attempts": attempts,
                },
            )
        )
    rules = dict(row.rules or {})
    if fallback is not None:
        rules.update(aggregation="per_node", aggregation_note=fallback)
    else:
        rules.update(secure_attempts=attempts, secure_completed=bool(contributions))
    row.rules = rules
    audit.append_many(session=session, events=events)
    completion = _refresh(session, row, tasks, now=now)
    progress.announce(session, [query_id])
    session.commit()
    if completion is not None:
        completion.remember()


def read_query(*, session: Session, query_id: UUID, user: User) -> QueryResult:
    """The stored result, with progress while running; a passed deadline is applied first."""
    qid = str(query_id)
    row = read_only(session).get(QueryRow, qid, populate_existing=True)
    if row is None:
        raise QueryNotFound()
    if user.role not in READ_ALL_ROLES and row.organisation != user.organisation:
        raise QueryOfOtherOrg()
    due = row.deadline is not None and row.deadline <= datetime.now(UTC)
    if row.status == "running" and due:
        # A lost timer (a hub restart, a worker down) must not leave a query running.
        session.rollback()
        finalize_due(session=session, query_id=qid)
        row = session.get(QueryRow, qid, populate_existing=True)
        assert row is not None
    result = None
    if row.status == "running":
        tasks = _tasks(session, qid)
        if any(t.outcome == "pending" for t in tasks):
            # Progress: combine what has arrived so far (stored releases, already verified).
            result = _safe_build(row, tasks)
        else:
            # The last answer was recorded between the two reads (read committed): the query
            # row was completed in the same transaction, so read it again.
            row = session.get(QueryRow, qid, populate_existing=True)
            assert row is not None
    if result is None:
        assert row.result is not None
        result = _completed.get(row) or QueryResult.model_validate(row.result)
    session.rollback()
    return result


class _CompletedResults:
    """Completed results built in this process, so reading one (the submitter's wait, each
    poll) does not validate the stored JSON again. A result is fixed once its query completes;
    an entry counts only if it matches the row's status and completion time.

    Bounded by the results' size (one per node status and cell, besides the result), not
    their count: every result held is objects each full garbage collection walks, and 1,024
    results of 1,000 nodes each were millions of them."""

    def __init__(self, size: int = 8192) -> None:
        self._size = size
        self._lock = threading.Lock()
        self._items: dict[str, tuple[QueryResult, bytes | None, int]] = {}
        self._held = 0

    def remember(self, query_id: str, result: QueryResult, body: bytes | None = None) -> None:
        """`result` completed `query_id` in a transaction that committed; `body`: its JSON."""
        weight = 1 + len(result.nodes) + len(result.cells)
        with self._lock:
            previous = self._items.pop(query_id, None)
            if previous is not None:
                self._held -= previous[2]
            # The oldest first (dicts keep insertion order), down to three quarters.
            goal = max(self._size * 3 // 4 - weight, 0)
            if self._held + weight > self._size:
                for key in list(self._items):
                    if self._held <= goal:
                        break
                    self._held -= self._items.pop(key)[2]
            self._items[query_id] = (result, body, weight)
            self._held += weight

    def completed(self, query_id: str) -> QueryResult | None:
        """The result this process completed `query_id` with (committed), if it holds it."""
        with self._lock:
            item = self._items.get(query_id)
        return None if item is None else item[0]

    def body(self, result: QueryResult) -> bytes:
        """`result`'s JSON: kept from when it was stored, if this is the result held for its
        query; else serialised now (and kept with it)."""
        query_id = str(result.query_id)
        with self._lock:
            item = self._items.get(query_id)
        if item is not None and item[0] is result and item[1] is not None:
            return item[1]
        body = result.model_dump_json().encode()
        if item is not None and item[0] is result:
            with self._lock:
                if self._items.get(query_id) is item:
                    self._items[query_id] = (result, body, item[2])
        return body

    def get(self, row: QueryRow) -> QueryResult | None:
        return self.peek(row.query_id, status=row.status, at=row.completed_at)

    def peek(self, query_id: str, *, status: str, at: datetime | None) -> QueryResult | None:
        """The result remembered for `query_id` if it matches this status and completion."""
        with self._lock:
            item = self._items.get(query_id)
        cached = None if item is None else item[0]
        if cached is None or at is None:
            return None
        if cached.status != status or cached.completed_at != at:
            return None
        return cached


_completed = _CompletedResults()


def completed_here(query_id: UUID) -> QueryResult | None:
    """The result, if this process completed the query (and its transaction committed): no
    database read and no authorisation check, so only for the query's own submitter."""
    return _completed.completed(str(query_id))


def result_body(result: QueryResult) -> bytes:
    """`result` as the JSON an API response carries, serialised once per completed result."""
    return _completed.body(result)


def finished_result(*, session: Session, query_id: UUID, user: User) -> QueryResult | None:
    """None while the query still waits for answers before its deadline, else its result.

    One light statement in the common cases (running, or completed in this process: the
    result built then is reused, so the stored JSON is not read and validated again); the
    full `read_query` otherwise."""
    found = (
        read_only(session)
        .execute(
            select(
                QueryRow.organisation, QueryRow.status, QueryRow.deadline, QueryRow.completed_at
            ).where(QueryRow.query_id == str(query_id))
        )
        .first()
    )
    session.rollback()
    if found is not None:
        due = found.deadline is not None and found.deadline <= datetime.now(UTC)
        if found.status == "running" and not due:
            return None
        cached = _completed.peek(str(query_id), status=found.status, at=found.completed_at)
        if cached is not None:
            if user.role not in READ_ALL_ROLES and found.organisation != user.organisation:
                raise QueryOfOtherOrg()
            return cached
    return read_query(session=session, query_id=query_id, user=user)


def list_queries(*, session: Session, user: User) -> list[QuerySummary]:
    stmt = select(QueryRow).order_by(QueryRow.created_at.desc())
    if user.role not in READ_ALL_ROLES:
        stmt = stmt.where(QueryRow.organisation == user.organisation)
    return [
        QuerySummary(
            query_id=UUID(r.query_id),
            analyst=r.analyst,
            organisation=r.organisation,
            agreement_id=r.agreement_id,
            agreement_version=r.agreement_version,
            dataset=str(r.spec.get("dataset")),
            measure=str(r.spec.get("measure")),
            status=r.status,
            created_at=r.created_at,
            spec=r.spec,
        )
        for r in session.scalars(stmt)
    ]


def open_tasks(*, session: Session, query_id: str) -> list[QueryNodeRow]:
    """Pending tasks of a query (used by deliveries to find what to send)."""
    return [t for t in _tasks(session, query_id) if t.outcome == "pending"]


def record_view(*, session: Session, query_id: UUID, user: User) -> None:
    """Log that a completed result was read: auditors must see who saw which numbers."""
    audit.append(
        session=session,
        actor=f"user:{user.name}",
        action="result.viewed",
        object=f"query:{query_id}",
        details={"organisation": user.organisation, "role": user.role},
    )
    session.commit()
