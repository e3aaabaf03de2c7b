"""Run an analyst's query: check and plan (DB), fan out (async HTTP), combine and store (DB)."""

from datetime import UTC, datetime
from uuid import UUID, uuid4

import anyio.to_thread
import httpx
from joserfc.jwk import OKPKey
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from contracts.v1 import AgreementTerms, NodeStatus, QueryResult, QuerySpec
from hub.agreements.service import active_version
from hub.audit import service as audit
from hub.auth.schemas import User
from hub.federation.combine import NodeAnswer, combine, result_status
from hub.federation.fanout import CallOutcome, fan_out
from hub.federation.models import Node
from hub.home import HubIdentity
from hub.privacy.planning import NodeTarget, Plan, check_spec, plan_query, select_targets
from hub.queries.exceptions import QueryNotFinished, QueryNotFound, QueryOfOtherOrg
from hub.queries.models import QueryNodeRow, QueryRow
from hub.queries.schemas import QuerySummary
from hub.settings import HubSettings

# Roles that may read every organisation's queries.
READ_ALL_ROLES = ("admin", "secretariat", "auditor")


async def run_query(
    *,
    sessions: sessionmaker[Session],
    client: httpx.AsyncClient,
    settings: HubSettings,
    identity: HubIdentity,
    key: OKPKey,
    user: User,
    spec: QuerySpec,
) -> QueryResult:
    """Every check runs before any node is contacted; refusals raise and send nothing."""

    def prepare() -> tuple[Plan, AgreementTerms]:
        with sessions() as session:
            return prepare_query(
                session=session,
                spec=spec,
                user=user,
                identity=identity,
                key=key,
                ttl_seconds=settings.request_ttl_seconds,
            )

    plan, terms = await anyio.to_thread.run_sync(prepare)
    outcomes = await fan_out(
        client=client,
        plan=plan,
        timeout_seconds=settings.node_timeout_seconds,
        retries=settings.node_retries,
        backoff_seconds=settings.node_backoff_seconds,
        contract_versions={d.name: d.contract_version for d in terms.datasets},
    )

    def finish() -> QueryResult:
        with sessions() as session:
            return finish_query(session=session, plan=plan, terms=terms, outcomes=outcomes)

    return await anyio.to_thread.run_sync(finish)


def prepare_query(
    *,
    session: Session,
    spec: QuerySpec,
    user: User,
    identity: HubIdentity,
    key: OKPKey,
    ttl_seconds: int,
    query_id: UUID | None = None,
) -> tuple[Plan, AgreementTerms]:
    """Check the spec, sign one request per node and record the submission."""
    terms, digest = active_version(session=session, agreement_id=spec.agreement_id)
    check_spec(spec=spec, terms=terms, organisation=user.organisation)
    nodes = session.scalars(select(Node).where(Node.node_id.in_(terms.node_ids))).all()
    targets = select_targets(
        spec=spec,
        terms=terms,
        nodes=[
            NodeTarget(node_id=n.node_id, country=n.country, url=n.url, public_jwk=n.public_jwk)
            for n in nodes
        ],
    )
    now = datetime.now(UTC)
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
    )
    qid = str(plan.query_id)
    session.add(
        QueryRow(
            query_id=qid,
            analyst=user.name,
            organisation=user.organisation,
            agreement_id=terms.agreement_id,
            agreement_version=terms.version,
            spec=spec.model_dump(mode="json"),
            status="running",
            result=None,
            created_at=now,
        )
    )
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
            "nodes": [c.target.node_id for c in plan.calls],
        },
    )
    session.commit()
    return plan, terms


def finish_query(
    *, session: Session, plan: Plan, terms: AgreementTerms, outcomes: list[CallOutcome]
) -> QueryResult:
    """Combine the verified releases, store the result and each node's outcome."""
    qid = str(plan.query_id)
    answers = [
        NodeAnswer(node_id=o.node_id, country=o.country, release=o.release)
        for o in outcomes
        if o.outcome == "ok" and o.release is not None
    ]
    result = QueryResult(
        query_id=plan.query_id,
        spec=plan.spec,
        group_by=plan.spec.group_by,
        status=result_status(asked=len(outcomes), answered=len(answers)),
        nodes=tuple(
            NodeStatus(
                node_id=o.node_id,
                country=o.country,
                outcome=o.outcome,
                error_code=o.error_code,
                message=o.message,
            )
            for o in outcomes
        ),
        cells=combine(
            spec=plan.spec,
            answers=answers,
            min_cell_size=terms.min_cell_size,
            max_ci_relative_width=terms.max_ci_relative_width,
        ),
        created_at=datetime.now(UTC),
    )
    jws_by_node = {c.target.node_id: c.jws for c in plan.calls}
    for o in outcomes:
        session.add(
            QueryNodeRow(
                query_id=qid,
                node_id=o.node_id,
                outcome=o.outcome,
                error_code=o.error_code,
                request_jws=jws_by_node[o.node_id],
                release_jws=o.release_jws,
            )
        )
        audit.append(
            session=session,
            actor="hub",
            action="query.node_outcome",
            object=f"query:{qid}",
            details={"node": o.node_id, "outcome": o.outcome, "error_code": o.error_code},
        )
    row = session.get(QueryRow, qid)
    if row is None:  # pragma: no cover - prepare_query committed it
        raise QueryNotFound()
    row.status = result.status
    row.result = result.model_dump(mode="json")
    audit.append(
        session=session,
        actor="hub",
        action="query.completed",
        object=f"query:{qid}",
        details={"status": result.status},
    )
    session.commit()
    return result


def get_query(*, session: Session, query_id: UUID, user: User) -> QueryResult:
    row = session.get(QueryRow, str(query_id))
    if row is None:
        raise QueryNotFound()
    if user.role not in READ_ALL_ROLES and row.organisation != user.organisation:
        raise QueryOfOtherOrg()
    if row.result is None:
        raise QueryNotFinished()
    return QueryResult.model_validate(row.result)


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
        )
        for r in session.scalars(stmt)
    ]
