"""Federation wire models: enrollment, node-signed polls, task answers and key rotation.

Every message a node sends on its own initiative is a compact JWS signed with its key; the
hub checks it against the key it pinned at enrollment. Tasks the hub hands out are the
same hub-signed `QueryRequest`s a push node receives.
"""

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import Field

from contracts.v1.base import WireModel
from contracts.v1.query import Signed

NodeMode = Literal["push", "pull"]
NODE_ID_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,99}$"
# An enrollment token is `se1.<hub kid>.<secret>`: the node learns which hub key to pin
# from the token the secretariat handed over, never from the network.
ENROLLMENT_TOKEN_PREFIX = "se1"  # noqa: S105 - a format tag, not a secret


class EnrollmentRequest(WireModel):
    """What a node asks to be enrolled as; signed with the node's own key (proof of holding it)."""

    hub_kid: str = Field(min_length=10, max_length=100)
    node_id: str = Field(pattern=NODE_ID_PATTERN)
    name: str = Field(min_length=1, max_length=200)
    country: str = Field(pattern=r"^\d{3}$")
    mode: NodeMode
    url: str | None = Field(default=None, pattern=r"^https?://", max_length=500)
    public_jwk: dict[str, Any]
    issued_at: datetime
    nonce: str = Field(min_length=16, max_length=64)


class EnrollmentSubmission(WireModel):
    """The body of `POST /v1/enroll`: the one-time token and the node-signed request."""

    token: str = Field(min_length=10, max_length=300)
    jws: str = Field(min_length=10, max_length=20_000)


class EnrollmentAccepted(WireModel):
    """The hub's answer, signed with the hub key whose id was in the token."""

    hub_id: str
    hub_kid: str
    hub_public_jwk: dict[str, Any]
    node_id: str
    kid: str
    mode: NodeMode
    enrolled_at: datetime


class NodePoll(WireModel):
    """A pull node asking for its tasks; signed by the node, fresh, and never replayable."""

    hub_id: str
    node_id: str
    issued_at: datetime
    nonce: str = Field(min_length=16, max_length=64)
    wait_seconds: float = Field(default=20, ge=0, le=60)
    max_tasks: int = Field(default=20, ge=1, le=100)


class TaskBatch(WireModel):
    """Hub-signed `QueryRequest`s for the polling node, oldest first."""

    tasks: tuple[Signed, ...] = ()


class TaskRefusal(WireModel):
    """A pull node's signed refusal of one task, with its stable code (push nodes answer 4xx)."""

    query_id: UUID
    node_id: str
    request_digest: str
    code: str = Field(min_length=1, max_length=100)
    message: str = Field(max_length=300)
    refused_at: datetime


class KeyRotation(WireModel):
    """A node replacing its key: signed by the current key and, separately, by the new one."""

    hub_id: str
    node_id: str
    new_public_jwk: dict[str, Any]
    issued_at: datetime
    nonce: str = Field(min_length=16, max_length=64)


class KeyRotationSubmission(WireModel):
    by_current_key: str = Field(min_length=10, max_length=20_000)
    by_new_key: str = Field(min_length=10, max_length=20_000)


class KeyRotationAccepted(WireModel):
    """The hub's answer to a `KeyRotation`, signed with the hub key the node pinned.

    The node switches to its new key only on this answer: an unsigned or forged one (no TLS,
    a meddling proxy) leaves the new key pending, so the node can never be talked into
    dropping the key the hub still pins.
    """

    hub_id: str
    node_id: str
    kid: str = Field(description="the node's new key id, now pinned by the hub")
    previous_kid: str
    previous_valid_until: datetime = Field(
        description="until when the hub still takes new messages signed by the previous key"
    )
    issued_at: datetime


# The HTTP header that carries a `HubKeyRotation` (compact JSON) to nodes during its overlap:
# on the hub's push requests and on its answers to polls, so every node learns of it on its
# next contact without a new message version.
HUB_KEY_ROTATION_HEADER = "Sauti-Hub-Key-Rotation"


class HubKeyAnnouncement(WireModel):
    """The hub replacing its key; nodes pin `new_public_jwk` in place of the key `old_kid`."""

    hub_id: str
    old_kid: str
    new_public_jwk: dict[str, Any]
    issued_at: datetime
    overlap_until: datetime = Field(
        description="until when nodes still take new requests signed by the old key, and "
        "still adopt this announcement"
    )


class HubKeyRotation(WireModel):
    """One `HubKeyAnnouncement` signed by the old hub key and, separately, by the new one."""

    by_old_key: str = Field(min_length=10, max_length=20_000)
    by_new_key: str = Field(min_length=10, max_length=20_000)
