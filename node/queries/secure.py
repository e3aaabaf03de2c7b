"""Secure aggregation at the node: a fresh key for one attempt (phase 1), then one masked,
partly noised contribution for a fixed roster (phase 2). See docs/privacy.md.

The node enforces everything itself: the query is checked exactly as for a release, the
agreement must allow secure aggregation for it, the roster must carry this node's own offer
and peers' offers signed with their node keys, and each attempt is charged to the budget
before any noise is drawn (at most one contribution per attempt, stored and resent on a
retry). The per-attempt X25519 key lives only in this process's memory and is dropped once
used: a node restarted between the phases answers `secure_session_unknown`, and the hub
starts a new attempt.
"""

import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, TypeVar

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from contracts import signing
from contracts.agreement_rules import secure_refusal
from contracts.errors import ContractError
from contracts.v1 import (
    MaskedComponent,
    OfferAnswer,
    QueryRequest,
    SecureContribution,
    SecureInvite,
    SecureOffer,
    SecureRoster,
    Signed,
)
from contracts.v1.secure import Keys
from node import security
from node.audit import service as audit
from node.db import transaction
from node.exceptions import NodeError
from node.home import NodeIdentity, load_identity, load_key
from node.ledger import service as ledger
from node.privacy import engine, mechanisms
from node.privacy import secure as noise
from node.queries import modes
from node.queries.exceptions import (
    RequestExpired,
    RosterInvalid,
    SecureNotAllowed,
    SecureSessionUnknown,
    WrongNode,
)
from node.queries.service import (
    HUB,
    Accepted,
    accept,
    audit_accepted,
    audit_refusal,
    charge_info,
    release_failed,
    verify_hub_signed,
    verify_request,
)
from node.settings import NodeSettings

Phase = TypeVar("Phase", SecureInvite, SecureRoster)
# How long an offered key waits for its roster.
OFFER_SECONDS = 900


@dataclass(frozen=True)
class _Offered:
    private: X25519PrivateKey
    offer_jws: str
    request_digest: str
    keys: Keys
    until: float


_offers: dict[tuple[str, str, int], _Offered] = {}
_lock = threading.Lock()


def attempt_id(query_id: uuid.UUID, attempt: int) -> uuid.UUID:
    """The ledger's key for one attempt: each attempt is charged on its own."""
    return uuid.uuid5(query_id, f"secure-attempt-{attempt}")


def handle_invite(
    *, settings: NodeSettings, signed: Signed, now: datetime | None = None
) -> OfferAnswer:
    """Phase 1: check the query as for a release, then offer a fresh key (charges nothing)."""
    now = now or datetime.now(UTC)
    identity = load_identity(settings.home)
    invite, request = _verified(identity, signed, SecureInvite, settings=settings, now=now)
    base = _details(request, invite.attempt, phase="offer")
    try:
        with transaction(settings.db_url) as session:
            accepted = _accepted_secure(session, identity, request, settings=settings, now=now)
            ledger.check_covers(session, terms=accepted.terms, rho=request.rho, now=now)
            modes.bind_secure(
                session, query_id=request.query_id, agreement_id=request.agreement_id, now=now
            )
    except NodeError as exc:
        audit_refusal(
            settings.db_url, code=exc.code, details=base, request=request, home=settings.home
        )
        raise
    key = (identity.node_id, str(request.query_id), invite.attempt)
    digest = signing.digest(request)
    keys = engine.cell_keys(accepted.contract, accepted.spec)
    with _lock:
        _drop_expired()
        existing = _offers.get(key)
        if existing is not None and existing.request_digest == digest:
            return OfferAnswer(offer=existing.offer_jws, keys=existing.keys)
        private = X25519PrivateKey.generate()
        offer = SecureOffer(
            query_id=request.query_id,
            node_id=identity.node_id,
            attempt=invite.attempt,
            request_digest=digest,
            public_key=noise.public_key_text(private.public_key()),
            keys_digest=signing.digest([list(k) for k in keys]),
            offered_at=now,
        )
        token = signing.sign(offer, load_key(settings.home))
        _offers[key] = _Offered(private, token, digest, keys, time.monotonic() + OFFER_SECONDS)
    with transaction(settings.db_url) as session:
        audit.append(session, actor=HUB, action="secure_offer", object=_obj(request), details=base)
    return OfferAnswer(offer=token, keys=keys)


def handle_roster(*, settings: NodeSettings, signed: Signed, now: datetime | None = None) -> Signed:
    """Phase 2: charge this attempt, add a noise share, mask, sign and store the contribution."""
    now = now or datetime.now(UTC)
    identity = load_identity(settings.home)
    roster, request = _verified(identity, signed, SecureRoster, settings=settings, now=now)
    base = {
        **_details(request, roster.attempt, phase="contribution"),
        "members": [m.node_id for m in roster.members],
    }
    key = (identity.node_id, str(request.query_id), roster.attempt)
    ledger_id = attempt_id(request.query_id, roster.attempt)
    roster_digest = signing.digest([[m.node_id, m.offer] for m in roster.members])
    try:
        with transaction(settings.db_url) as session:
            accepted = _accepted_secure(session, identity, request, settings=settings, now=now)
            stored = ledger.stored_release(
                session, query_id=ledger_id, request_digest=roster_digest
            )
            if stored is not None:  # a retry of a contribution already made
                return Signed(jws=stored)
            with _lock:
                offered = _offers.get(key)
            if offered is None or offered.request_digest != signing.digest(request):
                raise SecureSessionUnknown(
                    "this node holds no offer for that query and attempt: start a new attempt"
                )
            peers = _peers(identity, roster, offered)
            if len(set(roster.keys)) != len(roster.keys) or not set(offered.keys) <= set(
                roster.keys
            ):
                raise RosterInvalid("the roster's cells do not cover this node's cells once each")
            modes.bind_secure(
                session, query_id=request.query_id, agreement_id=request.agreement_id, now=now
            )
            noise.check_shares(
                cells=len(roster.keys),
                contract=accepted.contract,
                spec=accepted.spec,
                rho=request.rho,
                members=len(peers),
                collusion=accepted.terms.collusion,
            )
            reservation = ledger.reserve(
                session,
                query_id=ledger_id,
                request_digest=roster_digest,
                terms=accepted.terms,
                rho=request.rho,
                now=now,
                charge=charge_info(request),
            )
            audit_accepted(session, base, request, reservation)
    except NodeError as exc:
        audit_refusal(
            settings.db_url, code=exc.code, details=base, request=request, home=settings.home
        )
        raise
    if reservation.outcome == "stored":
        assert reservation.release_jws is not None
        return Signed(jws=reservation.release_jws)
    failed = partial(
        release_failed,
        settings.db_url,
        identity=identity,
        ledger_id=ledger_id,
        request_digest=roster_digest,
        obj=_obj(request),
        details=base,
        charged_now=reservation.outcome == "charged",
    )
    spec, contract = accepted.spec, accepted.contract
    try:
        exact = engine.measure_exact(
            data=accepted.scan(),
            contract=contract,
            spec=spec,
            rho=request.rho,
            source=accepted.source,
        )
    except Exception as exc:  # no noise drawn yet: this attempt's charge goes back
        raise failed(exc, noise_drawn=False) from None
    try:
        contribution = _contribution(
            identity,
            request,
            accepted,
            exact,
            roster=roster,
            roster_digest=roster_digest,
            private=offered.private,
            peers=peers,
        )
        token = signing.sign(contribution, load_key(settings.home))
    except Exception as exc:  # a noise share may have been drawn: the charge stands
        raise failed(exc, noise_drawn=True) from None
    with transaction(settings.db_url) as session:
        stored = ledger.store_release(session, query_id=ledger_id, release_jws=token)
        action = "release_stored" if stored == token else "release_discarded"
        audit.append(
            session, actor=identity.node_id, action=action, object=_obj(request), details=base
        )
    with _lock:  # the key has done its one job
        _offers.pop(key, None)
    return Signed(jws=stored)


def _verified(
    identity: NodeIdentity,
    signed: Signed,
    model: type[Phase],
    *,
    settings: NodeSettings,
    now: datetime,
) -> tuple[Phase, QueryRequest]:
    """The hub-signed message and the node's own signed query request inside it.

    Until the hub's signature on the message verifies, a refusal goes to the security log
    only; after that the hub stands behind what it sent, and refusals are chained."""
    try:
        message = verify_hub_signed(identity, signed, model, now=now)
    except NodeError as exc:
        security.unverified(route=_ROUTES[model], code=exc.code)
        raise
    base = {
        "query_id": str(message.query_id),
        "aggregation": "secure",
        "phase": "offer" if model is SecureInvite else "contribution",
        "attempt": message.attempt,
    }
    try:
        if message.node_id != identity.node_id:
            raise WrongNode("the message is addressed to another node")
        skew = timedelta(seconds=settings.clock_skew_seconds)
        issued = message.issued_at
        issued = issued if issued.tzinfo is not None else issued.replace(tzinfo=UTC)
        if issued - skew > now or now - issued > timedelta(
            seconds=settings.request_max_age_seconds
        ):
            raise RequestExpired("the message is issued outside the allowed time window")
        request = verify_request(
            identity, Signed(jws=message.request), now=now, aggregation="secure"
        )
        if request.query_id != message.query_id or request.node_id != identity.node_id:
            raise RosterInvalid("the message carries another query's request")
    except NodeError as exc:
        audit_refusal(settings.db_url, code=exc.code, details=base)
        raise
    return message, request


_ROUTES: dict[type, str] = {
    SecureInvite: "/v1/secure/offers",
    SecureRoster: "/v1/secure/contributions",
}


def _accepted_secure(
    session: Any,
    identity: NodeIdentity,
    request: QueryRequest,
    *,
    settings: NodeSettings,
    now: datetime,
) -> Accepted:
    accepted = accept(session, identity, request, settings=settings, now=now)
    reason = secure_refusal(accepted.terms, accepted.spec)
    if reason is not None:
        raise SecureNotAllowed(f"term aggregation: {reason}")
    return accepted


def _peers(
    identity: NodeIdentity, roster: SecureRoster, offered: _Offered
) -> dict[str, X25519PublicKey]:
    """Every member's verified X25519 key (this node's own included)."""
    ids = [m.node_id for m in roster.members]
    if len(set(ids)) != len(ids):
        raise RosterInvalid("the roster names a node twice")
    if len(ids) < 2:
        raise RosterInvalid("a secure roster needs at least two members")
    own = [m for m in roster.members if m.node_id == identity.node_id]
    if not own or own[0].offer != offered.offer_jws:
        raise RosterInvalid("the roster does not carry this node's offer for this attempt")
    peers: dict[str, X25519PublicKey] = {}
    for member in roster.members:
        try:
            key = signing.load_public_key(member.public_jwk)
            offer = signing.verify_model(member.offer, key, SecureOffer)
            public = noise.load_public_key(offer.public_key)
        except (ContractError, ValueError) as exc:
            raise RosterInvalid("a member's offer does not verify with its node key") from exc
        if (offer.node_id, offer.query_id, offer.attempt) != (
            member.node_id,
            roster.query_id,
            roster.attempt,
        ):
            raise RosterInvalid("a member's offer is for another node, query or attempt")
        peers[member.node_id] = public
    return peers


def _contribution(
    identity: NodeIdentity,
    request: QueryRequest,
    accepted: Accepted,
    exact: engine.Exact,
    *,
    roster: SecureRoster,
    roster_digest: str,
    private: X25519PrivateKey,
    peers: dict[str, X25519PublicKey],
) -> SecureContribution:
    spec, contract = accepted.spec, accepted.contract
    shares = noise.noisy_shares(
        exact,
        keys=roster.keys,
        contract=contract,
        spec=spec,
        rho=request.rho,
        rank=sorted(peers).index(identity.node_id),
        members=len(peers),
        collusion=accepted.terms.collusion,
    )
    context = f"{request.query_id}|{roster.attempt}"
    components = tuple(
        MaskedComponent(
            name="sum" if share.name == "sum" else "count",
            granularity=share.granularity,
            sensitivity=share.sensitivity.l2,
            adders=share.plan.adders,
            share_scale=share.share_scale,
            rho=share.rho,
            values=noise.vector_text(
                noise.masked(
                    share.values,
                    node_id=identity.node_id,
                    private=private,
                    peers=peers,
                    context=context,
                    component=share.name,
                )
            ),
        )
        for share in shares
    )
    low, high = noise.bounds(contract, spec)
    measure = spec.measure
    assert measure in ("count", "share", "sum")
    return SecureContribution(
        query_id=request.query_id,
        node_id=identity.node_id,
        attempt=roster.attempt,
        request_digest=signing.digest(request),
        roster_digest=roster_digest,
        members=tuple(sorted(peers)),
        collusion=accepted.terms.collusion,
        measure=measure,
        keys=roster.keys,
        inner=2 if measure == "share" else 1,
        center=(low + high) / 2,
        low=low,
        high=high,
        components=components,
        rho=request.rho,
        epsilon=mechanisms.epsilon(request.rho),
        delta=mechanisms.DELTA,
        released_at=datetime.now(UTC),
    )


def _details(request: QueryRequest, attempt: int, *, phase: str) -> dict[str, Any]:
    return {
        "query_id": str(request.query_id),
        "agreement_id": request.agreement_id,
        "agreement_version": request.agreement_version,
        "aggregation": "secure",
        "phase": phase,
        "attempt": attempt,
    }


def _obj(request: QueryRequest) -> str:
    return f"query:{request.query_id}"


def _drop_expired() -> None:
    moment = time.monotonic()
    for key in [k for k, v in _offers.items() if v.until < moment]:
        del _offers[key]
