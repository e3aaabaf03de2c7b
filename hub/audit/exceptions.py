"""Errors of the hub's audit domain (see the hierarchy in hub/exceptions.py)."""

from hub.exceptions import Conflict, Invalid


class CheckpointInvalid(Invalid):
    def __init__(self, message: str) -> None:
        super().__init__(message, code="checkpoint_invalid")


class CheckpointConflict(Conflict):
    def __init__(self) -> None:
        super().__init__(
            "this node already signed a different head at that sequence number "
            "(its log was rewritten)",
            code="checkpoint_conflict",
        )
