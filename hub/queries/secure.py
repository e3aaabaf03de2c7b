"""Secure aggregation at the hub: run the two phases over the push nodes, restart on dropout,
record only the sum. See docs/privacy.md (Secure aggregation) for the protocol and proof.

Attempt a = 1, 2, ... (at most MAX_ATTEMPTS, within the query's deadline):
1. invite every remaining node; a node that refuses or does not answer leaves the set;
2. fix the set (two or more nodes) and send each member the roster of signed offers; every
   member charges its budget for this attempt and answers a masked contribution;
3. if every member answered, add the contributions (the masks cancel) and record; if any
   member dropped out, the others' masked vectors are useless without its masks: the attempt
   is discarded (nothing is recorded or published from it) and a new one starts without it,
   with fresh keys, so no mask is ever reused.
If dropouts leave a single node, it is asked for an ordinary per-node release instead, and the
result says so. The hub never holds anything it could unmask a node with: seeds are derived
from X25519 keys it never sees.
"""

import asyncio
import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import anyio.to_thread
import httpx
from joserfc.jwk import OKPKey
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from contracts import signing
from contracts.v1 import (
    ErrorResponse,
    OfferAnswer,
    RosterMember,
    SecureContribution,
    SecureInvite,
    SecureOffer,
    SecureRoster,
    Signed,
)
from contracts.v1.secure import Keys
from hub.home import rotation_headers, signer
from hub.nodes.models import Node
from hub.nodes.service import node_keys
from hub.queries import push
from hub.queries import service as queries
from hub.queries.exceptions import ReleaseRejected
from hub.queries.models import QueryNodeRow, QueryRow
from hub.queries.releases import sent_digest, sent_request, verify_signed
from hub.queries.secure_combine import MAX_ATTEMPTS, AggregateInvalid, aggregate, fallback_query_id
from hub.settings import HubSettings

log = logging.getLogger("hub.federation")
OFFERS = "/v1/secure/offers"
CONTRIBUTIONS = "/v1/secure/contributions"


@dataclass(frozen=True)
class Member:
    """One node of a secure query, read before any I/O."""

    node_id: str
    url: str
    request_jws: str
    public_jwk: dict[str, Any]
    keys: dict[str, dict[str, Any]]


@dataclass(frozen=True)
class Failure:
    outcome: str
    code: str
    message: str


@dataclass(frozen=True)
class Secure:
    """What one secure query needs: its members and its deadline."""

    query_id: str
    deadline: datetime
    members: tuple[Member, ...]


def load(*, session: Session, query_id: str) -> Secure | None:
    """The pending secure tasks of a query and their nodes (None: nothing to run)."""
    now = datetime.now(UTC)
    row = session.get(QueryRow, query_id)
    if row is None or row.status != "running" or row.deadline is None:
        return None
    tasks = list(
        session.scalars(
            select(QueryNodeRow).where(
                QueryNodeRow.query_id == query_id,
                QueryNodeRow.outcome == "pending",
                QueryNodeRow.mode == "secure",
            )
        )
    )
    nodes = {
        n.node_id: n
        for n in session.scalars(select(Node).where(Node.node_id.in_([t.node_id for t in tasks])))
    }
    members = tuple(
        Member(
            node_id=t.node_id,
            url=nodes[t.node_id].url,
            request_jws=t.request_jws,
            public_jwk=nodes[t.node_id].public_jwk,
            keys=dict(node_keys(nodes[t.node_id], now=now)),
        )
        for t in tasks
        if t.node_id in nodes
    )
    deadline = row.deadline
    session.rollback()
    return Secure(query_id=query_id, deadline=deadline, members=members)


async def run(
    *,
    client: httpx.AsyncClient,
    sessions: sessionmaker[Session],
    settings: HubSettings,
    query_id: str,
) -> None:
    """Run a secure query to its end (a Celery task's work, or a task on the hub's loop)."""

    def read() -> Secure | None:
        with sessions() as session:
            return load(session=session, query_id=query_id)

    plan = await anyio.to_thread.run_sync(read)
    if plan is None or not plan.members:
        return
    identity, key = signer(settings.home)
    protocol = _Protocol(
        client=client, settings=settings, plan=plan, hub_id=identity.hub_id, key=key
    )
    contributions, failures, attempts = await protocol.run()
    survivors = [m.node_id for m in plan.members if m.node_id not in failures]
    fallback = fallback_jws = None
    if contributions is None and len(survivors) == 1:
        fallback = (
            "per-node noise: only one node remained after the others dropped out of secure"
            " aggregation"
        )
        (last,) = (m for m in plan.members if m.node_id == survivors[0])
        fallback_jws = per_node_request(last.request_jws, key)

    def record() -> None:
        with sessions() as session:
            queries.settle_secure(
                session=session,
                query_id=query_id,
                contributions=contributions or {},
                failures={k: (v.outcome, v.code, v.message) for k, v in failures.items()},
                attempts=attempts,
                fallback=fallback,
                fallback_request=fallback_jws,
            )

    await anyio.to_thread.run_sync(record)
    if fallback is not None:
        await push.deliver(
            client=client,
            sessions=sessions,
            settings=settings,
            query_id=query_id,
            node_id=survivors[0],
        )


SECURE_FAILED = "secure_failed"


def settle_failed(sessions: sessionmaker[Session], query_id: str) -> None:
    """Close the open tasks of a secure query whose run failed in the hub itself (not at a
    node): recorded as `failed` with `secure_failed`, so the query completes now and is not
    run again. Never raises; a database away leaves it to the deadline."""
    try:
        with sessions() as session:
            plan = load(session=session, query_id=query_id)
            if plan is None:
                return
            queries.settle_secure(
                session=session,
                query_id=query_id,
                contributions={},
                failures={
                    m.node_id: ("failed", SECURE_FAILED, "the hub could not run secure aggregation")
                    for m in plan.members
                },
                attempts=0,
                fallback=None,
            )
    except Exception as exc:
        log.error("closing secure query %s failed (%s)", query_id, type(exc).__name__)


class _Protocol:
    def __init__(
        self,
        *,
        client: httpx.AsyncClient,
        settings: HubSettings,
        plan: Secure,
        hub_id: str,
        key: OKPKey,
    ) -> None:
        self._client = client
        self._settings = settings
        self._plan = plan
        self._hub_id = hub_id
        self._key = key
        self._headers = rotation_headers(settings.home)

    async def run(self) -> tuple[dict[str, str] | None, dict[str, Failure], int]:
        """(contributions by node, or None; why each dropped node left; attempts made)."""
        members = list(self._plan.members)
        failures: dict[str, Failure] = {}
        attempt = 0
        while len(members) >= 2 and attempt < MAX_ATTEMPTS:
            if self._remaining() <= 0:
                break
            attempt += 1
            answered = await asyncio.gather(*(self._offer(m, attempt) for m in members))
            offers: dict[str, OfferAnswer] = {}
            for member, answer in zip(members, answered, strict=True):
                if isinstance(answer, Failure):
                    failures[member.node_id] = answer
                else:
                    offers[member.node_id] = answer
            members = [m for m in members if m.node_id in offers]
            if len(members) < 2:
                break
            roster = tuple(
                RosterMember(
                    node_id=m.node_id, public_jwk=m.public_jwk, offer=offers[m.node_id].offer
                )
                for m in members
            )
            keys = union_keys([offers[m.node_id].keys for m in sorted(members, key=_id)])
            answers = await asyncio.gather(
                *(self._contribute(m, attempt, roster, keys) for m in members)
            )
            dropped = False
            for member, contributed in zip(members, answers, strict=True):
                if isinstance(contributed, Failure):
                    failures[member.node_id] = contributed
                    dropped = True
            if dropped:
                log.info(
                    "secure query %s: attempt %d discarded after a dropout",
                    self._plan.query_id,
                    attempt,
                )
                members = [m for m in members if m.node_id not in failures]
                continue
            tokens = {m.node_id: str(a) for m, a in zip(members, answers, strict=True)}
            try:
                aggregate(
                    [
                        SecureContribution.model_validate_json(signing.unverified_payload(t))
                        for t in tokens.values()
                    ]
                )
            except AggregateInvalid as exc:
                log.warning(
                    "secure query %s: attempt %d did not add up: %s",
                    self._plan.query_id,
                    attempt,
                    exc,
                )
                for member in members:
                    failures[member.node_id] = Failure(
                        "failed", "contribution_invalid", "the contributions did not add up"
                    )
                return None, failures, attempt
            return tokens, failures, attempt
        if len(members) == 1:  # the caller falls back to a per-node release from it
            return None, failures, attempt
        for member in members:
            failures.setdefault(
                member.node_id,
                Failure(
                    "failed",
                    "secure_not_completed",
                    "secure aggregation did not complete: too few nodes stayed or attempts ran out",
                ),
            )
        return None, failures, attempt

    def _remaining(self) -> float:
        return (self._plan.deadline - datetime.now(UTC)).total_seconds()

    async def _offer(self, member: Member, attempt: int) -> OfferAnswer | Failure:
        invite = SecureInvite(
            hub_id=self._hub_id,
            node_id=member.node_id,
            query_id=UUID(self._plan.query_id),
            attempt=attempt,
            request=member.request_jws,
            issued_at=datetime.now(UTC),
            nonce=secrets.token_urlsafe(16),
        )
        body = await self._post(member, OFFERS, signing.sign(invite, self._key))
        if isinstance(body, Failure):
            return body
        try:
            answer = OfferAnswer.model_validate_json(body)
            offer = verify_signed(token=answer.offer, keys=member.keys, model=SecureOffer)
        except ValidationError:
            return Failure("failed", "offer_invalid", "not an offer")
        except ReleaseRejected as exc:
            return Failure("failed", "offer_invalid", exc.message)
        if (
            (str(offer.query_id), offer.node_id, offer.attempt)
            != (self._plan.query_id, member.node_id, attempt)
            or offer.request_digest != sent_digest(member.request_jws)
            or offer.keys_digest != signing.digest([list(k) for k in answer.keys])
        ):
            return Failure("failed", "offer_invalid", "the offer is for another query or attempt")
        return answer

    async def _contribute(
        self, member: Member, attempt: int, roster: tuple[RosterMember, ...], keys: Keys
    ) -> str | Failure:
        message = SecureRoster(
            hub_id=self._hub_id,
            node_id=member.node_id,
            query_id=UUID(self._plan.query_id),
            attempt=attempt,
            request=member.request_jws,
            members=roster,
            keys=keys,
            issued_at=datetime.now(UTC),
            nonce=secrets.token_urlsafe(16),
        )
        body = await self._post(member, CONTRIBUTIONS, signing.sign(message, self._key))
        if isinstance(body, Failure):
            return body
        try:
            answer = Signed.model_validate_json(body).jws
        except ValidationError:
            return Failure("failed", "contribution_invalid", "not a signed contribution")
        try:
            contribution = verify_signed(token=answer, keys=member.keys, model=SecureContribution)
        except ReleaseRejected as exc:
            return Failure("failed", "contribution_invalid", exc.message)
        roster_digest = signing.digest([[m.node_id, m.offer] for m in roster])
        request = sent_request(member.request_jws)
        if (
            str(contribution.query_id),
            contribution.node_id,
            contribution.attempt,
            contribution.roster_digest,
            contribution.request_digest,
            contribution.rho == request.rho and contribution.keys == keys,
        ) != (
            self._plan.query_id,
            member.node_id,
            attempt,
            roster_digest,
            sent_digest(member.request_jws),
            True,
        ):
            return Failure(
                "failed", "contribution_invalid", "the contribution answers another roster"
            )
        return answer

    async def _post(self, member: Member, path: str, jws: str) -> bytes | Failure:
        """One phase's call, retried once on a network error or a 5xx (the node answers a
        repeated message from what it stored, so a retry never draws new noise)."""
        body = Signed(jws=jws).model_dump(mode="json")
        last = Failure("failed", "node_unreachable", "the node could not be reached")
        for _ in range(2):
            remaining = self._remaining()
            if remaining <= 0:
                return Failure(
                    "timeout", "node_timeout", "the node did not answer before the deadline"
                )
            try:
                response = await self._client.post(
                    f"{member.url}{path}",
                    json=body,
                    headers=self._headers,
                    timeout=min(self._settings.node_timeout_seconds, remaining),
                )
            except httpx.TimeoutException:
                last = Failure("timeout", "node_timeout", "the node did not answer in time")
                continue
            except httpx.TransportError:
                continue
            if response.status_code >= 500:
                last = Failure("failed", "node_error", "the node answered with a server error")
                continue
            if response.status_code >= 400:
                return _refusal(response)
            return response.content
        return last


def per_node_request(request_jws: str, key: OKPKey) -> str:
    """The plain request that replaces a secure one when its node is the last one left.

    A node refuses a request signed for secure aggregation on its plain route, and a query
    id used in one mode in the other, so the hub signs a new request: a derived query id, no
    secure marker, a fresh nonce, the same spec, cost, issue time and expiry."""
    secure = sent_request(request_jws)
    plain = secure.model_copy(
        update={
            "query_id": fallback_query_id(secure.query_id),
            "aggregation": "per_node",
            "nonce": secrets.token_hex(16),
        }
    )
    return signing.sign(plain, key)


def union_keys(lists: Sequence[Keys]) -> Keys:
    """Every member's cells once, in order of first appearance (members by node id)."""
    seen: dict[tuple[str, ...], None] = {}
    for keys in lists:
        seen.update(dict.fromkeys(keys))
    return tuple(seen)


def _id(member: Member) -> str:
    return member.node_id


def _refusal(response: httpx.Response) -> Failure:
    try:
        error = ErrorResponse.model_validate_json(response.content).error
        return Failure("refused", error.code[:100], error.message[: push.MAX_NODE_MESSAGE])
    except ValidationError:
        return Failure("refused", f"http_{response.status_code}", "the node refused the request")
