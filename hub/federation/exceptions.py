"""Node registry errors (see the tree in `hub.exceptions`)."""

from hub.exceptions import Conflict, Invalid, NotFound


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
