"""Agreement errors (see the tree in `hub.exceptions`)."""

from hub.exceptions import Conflict, Forbidden, Invalid, NotFound


class AgreementNotFound(NotFound):
    def __init__(self) -> None:
        super().__init__("no agreement with this id (or version)", code="agreement_not_found")


class AgreementNotActive(Forbidden):
    def __init__(self) -> None:
        super().__init__(
            "no version of this agreement is signed by every party and within its validity",
            code="agreement_not_active",
        )


class AgreementVersionExists(Conflict):
    def __init__(self) -> None:
        super().__init__(
            "this agreement version exists; a change needs a new version",
            code="agreement_version_exists",
        )


class HubMismatch(Invalid):
    def __init__(self) -> None:
        super().__init__("terms.hub_id is not this hub's id", code="hub_mismatch")


class PartyNodeNotRegistered(Invalid):
    def __init__(self) -> None:
        super().__init__(
            "every node party must be a registered node (parties[].node_id)",
            code="node_not_registered",
        )


class SignatureRejected(Invalid):
    def __init__(self, message: str, *, code: str = "signature_invalid") -> None:
        super().__init__(message, code=code)
