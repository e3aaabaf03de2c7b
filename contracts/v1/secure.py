"""Secure aggregation wire models: the two phases of one attempt (docs/privacy.md).

Phase 1: the hub invites every participating push node (`SecureInvite`, hub-signed, carrying
the node's own signed `QueryRequest`); each node checks the query as for any release and
answers a `SecureOffer`: a fresh X25519 public key for this query and attempt, signed with
its node key. Phase 2: the hub fixes the participating set and sends each member a
`SecureRoster` (hub-signed) with every member's signed offer; each node charges its budget,
adds its share of the noise and answers a `SecureContribution` whose vectors are masked with
pairwise masks that cancel only in the sum over exactly that roster.
"""

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import Field

from contracts.v1.base import WireModel
from contracts.v1.federation import NODE_ID_PATTERN

# Masked vectors live in Z / 2^64: uniform masks, and a sum that wraps back exactly.
MAX_ATTEMPTS = 10
MAX_MEMBERS = 500
X25519_KEY_PATTERN = r"^[A-Za-z0-9_-]{43}$"  # 32 bytes, base64url without padding
Keys = tuple[tuple[str, ...], ...]


class SecureInvite(WireModel):
    """Phase 1, hub to node: take part in attempt `attempt` of this query."""

    hub_id: str
    node_id: str = Field(pattern=NODE_ID_PATTERN)
    query_id: UUID
    attempt: int = Field(ge=1, le=MAX_ATTEMPTS)
    request: str = Field(min_length=10, max_length=100_000, description="the signed QueryRequest")
    issued_at: datetime
    nonce: str = Field(min_length=16, max_length=64)


class SecureOffer(WireModel):
    """Phase 1, node to hub: a fresh X25519 public key for one query and attempt."""

    query_id: UUID
    node_id: str = Field(pattern=NODE_ID_PATTERN)
    attempt: int = Field(ge=1, le=MAX_ATTEMPTS)
    request_digest: str
    public_key: str = Field(pattern=X25519_KEY_PATTERN)
    keys_digest: str = Field(
        description="SHA-256 of the canonical JSON of this node's cell keys (OfferAnswer.keys)"
    )
    offered_at: datetime


class OfferAnswer(WireModel):
    """The body of a phase-1 answer: the signed offer, and the cell keys of this node's
    contract for the query (public levels; the offer signs their digest). Nodes may hold
    different levels: the hub puts the union of every member's keys in the roster."""

    offer: str = Field(min_length=10, max_length=20_000)
    keys: Keys


class RosterMember(WireModel):
    """One member of the fixed set: its pinned signing key and its signed offer."""

    node_id: str = Field(pattern=NODE_ID_PATTERN)
    public_jwk: dict[str, Any]
    offer: str = Field(min_length=10, max_length=20_000)


class SecureRoster(WireModel):
    """Phase 2, hub to node: the participating set of this attempt, fixed."""

    hub_id: str
    node_id: str = Field(pattern=NODE_ID_PATTERN)
    query_id: UUID
    attempt: int = Field(ge=1, le=MAX_ATTEMPTS)
    request: str = Field(min_length=10, max_length=100_000)
    members: tuple[RosterMember, ...] = Field(min_length=1, max_length=MAX_MEMBERS)
    keys: Keys = Field(description="the cells every member fills: the union of their keys")
    issued_at: datetime
    nonce: str = Field(min_length=16, max_length=64)


class MaskedComponent(WireModel):
    """One noisy integer vector, masked: uniform on its own, exact in the roster's sum.

    `granularity` is the real value of one integer step (1 for counts; for the centred sum
    of `sum`, the public grid the node rounded its exact sums to). The first `adders`
    members by node id each add discrete Gaussian noise of one scale; `share_scale` is this
    node's (0 when it adds none). `sensitivity` is the L2 sensitivity of the integer vector.
    """

    name: Literal["count", "sum"]
    granularity: float = Field(gt=0)
    sensitivity: float = Field(gt=0)
    adders: int = Field(ge=1)
    share_scale: float = Field(ge=0)
    rho: float = Field(gt=0)
    values: str = Field(
        pattern=r"^[A-Za-z0-9_-]*$",
        description="the masked vector: unsigned 64-bit little-endian integers, base64url",
    )


class SecureContribution(WireModel):
    """Phase 2, node to hub: this node's masked, partly noised vectors for one attempt."""

    query_id: UUID
    node_id: str = Field(pattern=NODE_ID_PATTERN)
    attempt: int = Field(ge=1, le=MAX_ATTEMPTS)
    request_digest: str
    roster_digest: str = Field(description="SHA-256 of the roster's canonical member list")
    members: tuple[str, ...]
    collusion: int = Field(ge=0)
    measure: Literal["count", "share", "sum"]
    keys: Keys = Field(description="the roster's cells, in its order")
    inner: int = Field(ge=1, description="entries per key: 2 for share (match, other)")
    center: float = 0.0
    low: float = 0.0
    high: float = 0.0
    components: tuple[MaskedComponent, ...] = Field(min_length=1, max_length=2)
    rho: float = Field(gt=0)
    epsilon: float
    delta: float
    released_at: datetime
