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


class AgreementNotDraft(Conflict):
    def __init__(self) -> None:
        super().__init__(
            "this version is no longer a draft; a change needs a new version",
            code="agreement_not_draft",
        )


class AgreementNotProposed(Conflict):
    def __init__(self) -> None:
        super().__init__(
            "this version is a draft; the secretariat must propose it before anyone signs",
            code="agreement_not_proposed",
        )


class AgreementRevoked(Conflict):
    def __init__(self) -> None:
        super().__init__(
            "the agreement is revoked at the hub; revocation is final", code="agreement_revoked"
        )


class VersionNotNext(Invalid):
    def __init__(self, expected: int) -> None:
        super().__init__(
            f"terms.version must be {expected}, the next version of this agreement",
            code="version_not_next",
        )


class AmendsMismatch(Invalid):
    def __init__(self) -> None:
        super().__init__(
            "terms.amends_digest must be the digest of the previous version",
            code="amends_mismatch",
        )


class TermsMismatch(Invalid):
    def __init__(self) -> None:
        super().__init__(
            "the body's agreement_id or version differs from the path", code="terms_mismatch"
        )


class NoticeRejected(Invalid):
    def __init__(self, message: str, *, code: str = "notice_invalid") -> None:
        super().__init__(message, code=code)


class NotAParty(Forbidden):
    def __init__(self) -> None:
        super().__init__("the signing node is not a party to this agreement", code="not_a_party")
