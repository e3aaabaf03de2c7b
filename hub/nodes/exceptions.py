"""Node registry, enrollment and node-message errors (see the tree in `hub.exceptions`)."""

from hub.exceptions import Conflict, Forbidden, Invalid, NotFound, Unauthenticated


class NodeNotFound(NotFound):
    def __init__(self) -> None:
        super().__init__("no node is registered under this id", code="node_not_found")


class NodeExists(Conflict):
    def __init__(self) -> None:
        super().__init__(
            "a node with this id is already registered with another key", code="node_exists"
        )


class NodeKeyInvalid(Invalid):
    def __init__(self) -> None:
        super().__init__("public_jwk is not an Ed25519 public key", code="key_invalid")


class NodeRemoved(Forbidden):
    def __init__(self) -> None:
        super().__init__("this node was removed from the federation", code="node_removed")


class EnrollmentTokenInvalid(Unauthenticated):
    """Unknown, used or expired: one code, so a guesser learns nothing about which."""

    def __init__(self) -> None:
        super().__init__(
            "the enrollment token is unknown, already used or expired",
            code="enrollment_token_invalid",
        )


class EnrollmentInvalid(Invalid):
    def __init__(self, message: str) -> None:
        super().__init__(message, code="enrollment_invalid")


class NodeMessageRejected(Unauthenticated):
    """A node-signed message that does not verify, is stale, or names another node."""

    def __init__(self, message: str, *, code: str = "node_signature_invalid") -> None:
        super().__init__(message, code=code)


class ReplayedMessage(Conflict):
    def __init__(self) -> None:
        super().__init__("this signed message was already received", code="replayed")
