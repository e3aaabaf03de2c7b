"""Auth errors (see the tree in `hub.exceptions`)."""

from hub.exceptions import Forbidden, Invalid, Unauthenticated


class TokenUnknown(Unauthenticated):
    def __init__(self) -> None:
        super().__init__("a valid bearer API token is required")


class RoleForbidden(Forbidden):
    def __init__(self, allowed: tuple[str, ...]) -> None:
        super().__init__(f"this needs one of the roles: {', '.join(allowed)}")


class RoleUnknown(Invalid):
    def __init__(self) -> None:
        super().__init__("role must be admin, secretariat, analyst or auditor", code="role_unknown")
