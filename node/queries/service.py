"""Handle one hub-signed query request, whatever transport brought it (push or pull)."""

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, Literal, TypeVar
from uuid import UUID

import polars as pl
from pydantic import ValidationError

from contracts import signing
from contracts.agreement_rules import filter_refusal
from contracts.errors import ContractError
from contracts.v1 import (
    AgreementTerms,
    DatasetContract,
    QueryRequest,
    QuerySpec,
    Release,
    SecureInvite,
    SecureRoster,
    Signed,
)
from contracts.v1.base import utc
from node import security
from node.agreements import service as agreements
from node.agreements.exceptions import AgreementUnknown
from node.audit import service as audit
from node.datasets import service as datasets
from node.db import SessionLike, core_transaction, transaction
from node.exceptions import NodeError
from node.harmonisation import service as harmonisation
from node.home import NodeIdentity, hub_keys, load_identity, load_key
from node.ledger import service as ledger
from node.ledger.schemas import ChargeInfo, Reservation
from node.privacy import engine
from node.queries import modes
from node.queries.exceptions import (
    ControlCharacters,
    InvalidRequest,
    InvalidSpec,
    ReleaseFailed,
    RequestExpired,
    RhoMismatch,
    SignatureRejected,
    Unsigned,
    WrongNode,
    WrongRoute,
)
from node.settings import NodeSettings
from runtime import edge

log = logging.getLogger(__name__)

# The hub-signed messages a node acts on.
HubSigned = TypeVar("HubSigned", QueryRequest, SecureInvite, SecureRoster)
HUB = "hub"
# The route label of push requests in the security log and metrics (pull uses "pull").
PUSH_ROUTE = "/v1/queries"


def handle_query(
    *,
    settings: NodeSettings,
    signed: Signed,
    now: datetime | None = None,
    route: str = PUSH_ROUTE,
    on_verified: Callable[[], object] | None = None,
) -> Signed:
    """Check, charge, compute, store and sign one release; refusals charge nothing.

    Raises a NodeError subclass (with its stable code) for every refusal. Refusals of a
    verified hub request are audited in the chain; traffic no hub signature verifies goes to
    the security log only (`route` names where it came in: a push route or `pull`). A release
    that fails once charged is refused as `release_failed` (or its own code), and its charge
    is returned when no noise was drawn. `on_verified` runs once the hub's signature holds.
    """
    now = now or datetime.now(UTC)
    url = settings.db_url
    identity = load_identity(settings.home)
    try:
        request = verify_request(identity, signed, now=now)
    except NodeError as exc:
        # Nobody verified stands behind it: never the chain, never an actor claimed.
        security.unverified(route=route, code=exc.code)
        raise
    if on_verified is not None:  # the hub was heard (metrics), junk never counts
        on_verified()
    base = {
        "query_id": str(request.query_id),
        "agreement_id": request.agreement_id,
        "agreement_version": request.agreement_version,
    }
    request_digest = signing.digest(request)
    try:
        # Core transactions (no ORM session): every statement of the query path is Core.
        with core_transaction(url) as session:
            accepted = accept(session, identity, request, settings=settings, now=now)
            terms, spec = accepted.terms, accepted.spec
            reservation = ledger.reserve(
                session,
                query_id=request.query_id,
                request_digest=request_digest,
                terms=terms,
                rho=request.rho,
                now=now,
                charge=charge_info(request),
            )
            # Under the budget lock reserve took; a conflict rolls the charge back whole.
            modes.check_plain(session, query_id=request.query_id)
            audit_accepted(session, base, request, reservation)
            # The exact pass draws no noise and its result stays in this process until the
            # charge is durable: planned here, its query is collected on another thread
            # while the commit below syncs the charge to disk, instead of after it. Only for
            # a request charged now or before: a stored answer or a refusal starts none.
            exact_pass = (
                None
                if reservation.outcome == "stored"
                else _start_exact(accepted, spec=spec, rho=request.rho)
            )
    except NodeError as exc:
        audit_refusal(url, code=exc.code, details=base, request=request, home=settings.home)
        raise
    if exact_pass is None:  # answered before: the stored release is the answer
        assert reservation.release_jws is not None
        return Signed(jws=reservation.release_jws)

    failed = partial(
        release_failed,
        url,
        identity=identity,
        ledger_id=request.query_id,
        request_digest=request_digest,
        obj=_obj(request),
        details=base,
        # Only a charge made by this very call is known to have drawn nothing yet: a
        # `pending` one was made by an attempt that may have drawn noise before it failed.
        charged_now=reservation.outcome == "charged",
    )
    try:
        exact = exact_pass()
    except Exception as exc:  # no noise drawn yet: the charge goes back
        raise failed(exc, noise_drawn=False) from None
    # The charge is durable (committed above): only now is noise drawn.
    try:
        computed = engine.release_exact(
            exact,
            min_cell_size=terms.min_cell_size,
            max_ci_relative_width=terms.max_ci_relative_width,
            suppress=terms.suppression == "per_node",
        )
        release = Release(
            query_id=request.query_id,
            node_id=identity.node_id,
            agreement_id=request.agreement_id,
            agreement_version=request.agreement_version,
            dataset=spec.dataset,
            contract_version=accepted.contract_version,
            measure=spec.measure,
            group_by=computed.group_by,
            mechanism=computed.mechanism,
            rho=request.rho,
            noise_scale=computed.noise_scale,
            request_digest=request_digest,
            cells=computed.cells,
            released_at=datetime.now(UTC),
            components=computed.components,
            epsilon=computed.epsilon,
            delta=computed.delta,
            weighted=computed.weighted,
            grid=computed.grid,
            bounds=computed.bounds,
            integer=computed.integer,
        )
        token = signing.sign(release, load_key(settings.home))
    except Exception as exc:  # noise may have been drawn: budget stays spent (trust model)
        raise failed(exc, noise_drawn=True) from None
    with core_transaction(url) as session:
        stored = ledger.store_release(session, query_id=request.query_id, release_jws=token)
        # A concurrent twin may have stored first: its release wins and ours is discarded.
        action = "release_stored" if stored == token else "release_discarded"
        audit.append(
            session, actor=identity.node_id, action=action, object=_obj(request), details=base
        )
    log.info("query %s answered", request.query_id)
    return Signed(jws=stored)


# Threads that only collect exact passes' polars queries (`_start_exact`); a handler waits
# for its own, never the reverse, so a busy pool only queues. Its size bounds the passes
# that run at once (each is multi-threaded inside polars).
_COLLECTS = ThreadPoolExecutor(max_workers=4, thread_name_prefix="sauti-exact")


def _start_exact(
    accepted: "Accepted", *, spec: QuerySpec, rho: float
) -> Callable[[], engine.Exact]:
    """The exact (noise-free) pass of an accepted request: checked and planned here, its
    query started on a collecting thread (polars releases the GIL as it runs); calling the
    result waits for it. Never raises: a failure is raised by that call, where a failed
    pass returns its charge."""
    try:
        query, finish = engine.prepare_exact(
            data=accepted.scan(),
            contract=accepted.contract,
            spec=spec,
            rho=rho,
            source=accepted.source,
        )
        running = _COLLECTS.submit(query.collect)
    except Exception as exc:
        failure = exc

        def fail() -> engine.Exact:
            raise failure

        return fail
    return lambda: finish(running.result())


def release_failed(
    url: str,
    exc: Exception,
    *,
    identity: NodeIdentity,
    ledger_id: UUID,
    request_digest: str,
    obj: str,
    details: dict[str, Any],
    charged_now: bool,
    noise_drawn: bool,
) -> NodeError:
    """Record a charged release that could not be computed, and the refusal to answer.

    Budget is spent before noise is drawn (the trust model), so the charge is returned only
    when it is certain that no noise was drawn under it: the failure came before the first
    draw, and the charge was made by this very attempt. The chain says what failed (the
    error's type or code, never its text) and whether the budget came back.
    """
    code = exc.code if isinstance(exc, NodeError) else ReleaseFailed.code
    log.error("%s: the release failed (%s)", obj, type(exc).__name__)
    with transaction(url) as session:
        released = None
        if charged_now and not noise_drawn:
            released = ledger.release_reservation(
                session, query_id=ledger_id, request_digest=request_digest
            )
        events = [
            audit.Event(
                actor=identity.node_id,
                action="release_failed",
                object=obj,
                details={
                    **details,
                    "code": code,
                    "error": type(exc).__name__,
                    "noise_drawn": noise_drawn,
                },
            )
        ]
        if released is not None:
            events.append(
                audit.Event(
                    actor=identity.node_id,
                    action="budget_released",
                    object=obj,
                    details={**details, "rho": released},
                )
            )
        audit.append_many(session, events)
    if isinstance(exc, NodeError):
        return exc
    return ReleaseFailed(
        "the node could not compute this release"
        + ("; its charge was returned" if released is not None else "")
    )


@dataclass(frozen=True)
class Accepted:
    """A request this node will answer: its terms and the data it is answered from."""

    terms: AgreementTerms
    spec: QuerySpec
    contract: DatasetContract
    contract_version: int
    scan: Callable[[], pl.LazyFrame]
    source: Path | None


def accept(
    session: SessionLike,
    identity: NodeIdentity,
    request: QueryRequest,
    *,
    settings: NodeSettings,
    now: datetime,
) -> Accepted:
    """Every check of a verified request short of the budget; raises the refusal's NodeError."""
    _check_request(identity, request, settings=settings, now=now)
    terms = agreements.honoured_terms(
        session,
        agreement_id=request.agreement_id,
        version=request.agreement_version,
        digest=request.agreement_digest,
        now=now,
    )
    spec = request.spec
    if spec.agreement_id != request.agreement_id:
        raise AgreementUnknown("the query names another agreement")
    reason = filter_refusal(spec)
    if reason is not None:
        raise InvalidSpec(reason)
    scan: Callable[[], pl.LazyFrame]
    source: Path | None
    if spec.module_version is None:
        contract_version = agreements.check_dataset(terms, dataset=spec.dataset)
        dataset = datasets.load(home=settings.home, name=spec.dataset, version=contract_version)
        contract, scan = dataset.contract, partial(pl.scan_parquet, dataset.parquet_path)
        # The stored file itself: its observed value range is cached per file version, so
        # the engine skips clamps that cannot change a value.
        source = dataset.parquet_path
    else:
        # A shared module: answered through this node's mapping (never charged when the
        # module, the mapping or a queried variable is missing here).
        view = harmonisation.query_view(home=settings.home, terms=terms, spec=spec)
        contract_version, contract, scan = view.version, view.contract, view.scan
        source = None  # a mapped view is always clamped
    agreements.check_measure(terms, spec=spec)
    engine.check_spec(contract=contract, spec=spec)
    agreements.check_columns(terms, spec=spec, rho=request.rho)
    agreements.check_requester(terms, request=request)
    # Every bound on the cost before anything is charged: nothing fails for it afterwards.
    engine.check_cost(contract=contract, spec=spec, rho=request.rho)
    return Accepted(terms, spec, contract, contract_version, scan, source)


def charge_info(request: QueryRequest) -> ChargeInfo:
    """What the ledger records with a charge: version, what was asked and who asked."""
    spec = request.spec
    return ChargeInfo(
        version=request.agreement_version,
        dataset=spec.dataset,
        measure=spec.measure,
        column=spec.column,
        group_by=spec.group_by,
        analyst=request.analyst,
        organisation=request.analyst_organisation,
    )


def verify_request(
    identity: NodeIdentity,
    signed: Signed,
    *,
    now: datetime,
    aggregation: Literal["per_node", "secure"] = "per_node",
) -> QueryRequest:
    """A hub-signed QueryRequest for this route: `per_node` (the plain query route, push or
    pull) or `secure` (inside a SecureInvite or SecureRoster)."""
    request = verify_hub_signed(identity, signed, QueryRequest, now=now)
    if request.aggregation != aggregation:
        if request.aggregation == "secure":
            raise WrongRoute(
                "the request was signed for secure aggregation: it is answered only in its "
                "secure phases, never as a plain query"
            )
        raise WrongRoute("a secure phase must carry a request signed for secure aggregation")
    return request


def verify_hub_signed(
    identity: NodeIdentity, signed: Signed, model: type[HubSigned], *, now: datetime
) -> HubSigned:
    """A message signed by the pinned hub (or its previous key during a rotation's overlap).

    A bad or missing signature is `signature_invalid`; a verified payload that is not a
    `model` (another message, a malformed one) is `invalid_request`."""
    try:
        header = signing.unverified_header(signed.jws)
    except ContractError as exc:
        raise Unsigned("the request is not a compact JWS") from exc
    if identity.hub_id is None or identity.hub_public_jwk is None:
        raise SignatureRejected("no hub is pinned at this node")
    # The pinned hub key, or the one it replaced while that rotation's overlap lasts.
    jwk = hub_keys(identity, now=now).get(str(header.get("kid")))
    if jwk is None:
        raise SignatureRejected("the request is not signed with the pinned hub key")
    hub_key = signing.load_public_key(jwk)
    try:
        payload = signing.verify(signed.jws, hub_key)
    except ContractError as exc:
        raise SignatureRejected("the request signature does not verify") from exc
    try:
        message = model.model_validate_json(payload)
    except ValidationError as exc:
        raise InvalidRequest(f"the signed payload is not a valid {_NAMES[model]}") from exc
    if message.hub_id != identity.hub_id:
        raise SignatureRejected("the request names another hub than the pinned one")
    # The hub refuses these at its edge; a message signed before it did, or by a hub that
    # does not, must still not reach a database (PostgreSQL cannot store NUL) or a log.
    if bad := edge.forbidden_in(message.model_dump(mode="json"), ()):
        names = ", ".join(".".join(str(p) for p in loc) for loc in bad)
        raise ControlCharacters(f"invalid fields: {names} (control_character)")
    return message


_NAMES: dict[type, str] = {
    QueryRequest: "query request",
    SecureInvite: "secure aggregation invite",
    SecureRoster: "secure aggregation roster",
}


def _check_request(
    identity: NodeIdentity, request: QueryRequest, *, settings: NodeSettings, now: datetime
) -> None:
    if request.node_id != identity.node_id:
        raise WrongNode("the request is addressed to another node")
    if request.rho != request.spec.rho:
        raise RhoMismatch("the request's rho differs from its spec's rho")
    skew = timedelta(seconds=settings.clock_skew_seconds)
    issued, expires = utc(request.issued_at), utc(request.expires_at)
    if expires + skew < now:
        raise RequestExpired("the request has expired")
    if issued - skew > now:
        raise RequestExpired("the request is issued in the future beyond the allowed clock skew")
    if now - issued > timedelta(seconds=settings.request_max_age_seconds):
        raise RequestExpired("the request was issued too long ago")
    if expires <= issued:
        raise InvalidRequest("the request expires before it is issued")


def _obj(request: QueryRequest) -> str:
    return f"query:{request.query_id}"


def audit_accepted(
    session: Any, base: dict[str, Any], request: QueryRequest, reservation: Reservation
) -> None:
    # One append for the three entries: they share the reservation's transaction (and its
    # one commit), so the log says "charged" exactly when the ledger does.
    obj = _obj(request)
    decision = {
        **base,
        "code": "accepted" if reservation.outcome != "stored" else "stored_release",
        **described(request),
    }
    events = [
        audit.Event(actor=HUB, action="request_received", object=obj, details=base),
        audit.Event(actor=HUB, action="decision", object=obj, details=decision),
    ]
    if reservation.outcome == "charged":
        events.append(
            audit.Event(
                actor=HUB,
                action="budget_charged",
                object=obj,
                details={**base, "rho": request.rho},
            )
        )
    audit.append_many(session, events)


def described(
    request: QueryRequest, *, known: dict[str, frozenset[str]] | None = None
) -> dict[str, Any]:
    """What was asked, by which organisation, at what cost: the steward's requests log shows
    it for accepted and refused requests alike: column names and the cost, never a value or
    a level. For a refused request `known` holds the columns of the dataset's contract here:
    a name the contract does not have is not written down (`"?"`), so nothing an analyst
    typed enters the log unless it is this node's public metadata."""
    spec = request.spec

    def name(column: str | None) -> str | None:
        if column is None or known is None or column in known:
            return column
        return "?"

    return {
        "dataset": spec.dataset if known is None or known else "?",
        "measure": spec.measure,
        "column": name(spec.column),
        "group_by": [name(dim) for dim in spec.group_by],
        # Which columns filter it, not the levels chosen: no entry repeats a level back.
        "filter_columns": [name(f.column) for f in spec.filters],
        "organisation": request.analyst_organisation,
        "rho": request.rho,
    }


def public_names(home: Path, dataset: str) -> dict[str, frozenset[str]]:
    """The columns of `dataset`'s newest contract here, with their levels (empty: not held)."""
    try:
        contract = datasets.get_contract(home=home, name=dataset)
    except NodeError:
        return {}
    return {c.name: frozenset(level.code for level in c.levels) for c in contract.columns}


def audit_refusal(
    url: str,
    *,
    code: str,
    details: dict[str, Any],
    request: QueryRequest | None = None,
    home: Path | None = None,
) -> None:
    """Audit a verified hub request's refusal in its own transaction (the refused one was
    rolled back whole). Only ever called after the hub's signature verified; what was asked
    is recorded in names this node's contracts know (`described`)."""
    obj = f"query:{details['query_id']}"
    asked = (
        described(request, known=public_names(home, request.spec.dataset))
        if request is not None and home is not None
        else {}
    )
    with transaction(url) as session:
        audit.append_many(
            session,
            [
                audit.Event(actor=HUB, action="request_received", object=obj, details=details),
                audit.Event(
                    actor=HUB,
                    action="decision",
                    object=obj,
                    details={**details, "code": code, **asked},
                ),
            ],
        )
    log.info("query refused: %s", code)
