"""Auth errors (see the tree in `hub.exceptions`)."""

from hub.exceptions import Conflict, Forbidden, Invalid, NotFound, Unauthenticated


class TokenUnknown(Unauthenticated):
    def __init__(self, message: str = "a valid bearer API token is required") -> None:
        super().__init__(message)


class TokenExpired(Unauthenticated):
    def __init__(self, subject: str | None = None) -> None:
        super().__init__("the API token has expired", code="token_expired")
        # Which credential was presented ("token:12"), for the audit entry of the refusal.
        self.subject = subject


class TokenRevoked(Unauthenticated):
    def __init__(self, subject: str | None = None) -> None:
        super().__init__("the API token was revoked", code="token_revoked")
        self.subject = subject


class SessionInvalid(Unauthenticated):
    def __init__(self, subject: str | None = None) -> None:
        super().__init__("the session has ended or expired; log in again", code="session_expired")
        self.subject = subject


class LoginFailed(Unauthenticated):
    def __init__(self) -> None:
        # One message for unknown user, wrong password, wrong or missing TOTP code, a disabled
        # and a locked account, so answers do not tell which user names exist.
        super().__init__(
            "user name, password or one-time code is wrong, or the account is locked after"
            " too many failed logins",
            code="login_failed",
        )


class OidcFailed(Unauthenticated):
    """Any failed single sign-on step; the code names the check (state, nonce, token)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message, code=code)


class RoleForbidden(Forbidden):
    def __init__(self, allowed: tuple[str, ...]) -> None:
        super().__init__(f"this needs one of the roles: {', '.join(allowed)}")


class NodeScopeForbidden(Forbidden):
    def __init__(self) -> None:
        super().__init__(
            "a steward acts only for the node their role is scoped to", code="node_scope_forbidden"
        )


class CsrfFailed(Forbidden):
    def __init__(self) -> None:
        super().__init__(
            "a state-changing request in a browser session needs the session's CSRF token "
            "(X-CSRF-Token header or csrf_token form field)",
            code="csrf_failed",
        )


class PasswordChangeRequired(Forbidden):
    def __init__(self) -> None:
        super().__init__(
            "the password was reset: change it (POST /v1/auth/password) before anything else",
            code="password_change_required",
        )


class RoleUnknown(Invalid):
    def __init__(self) -> None:
        super().__init__(
            "role must be admin, secretariat, analyst, auditor or steward", code="role_unknown"
        )


class ScopeInvalid(Invalid):
    def __init__(self, message: str) -> None:
        super().__init__(message, code="scope_invalid")


class PasswordRejected(Invalid):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("the password " + "; ".join(problems), code="password_rejected")


class TotpInvalid(Invalid):
    def __init__(self, message: str = "the one-time code is wrong or was already used") -> None:
        super().__init__(message, code="totp_invalid")


class OrganisationNotFound(NotFound):
    def __init__(self) -> None:
        super().__init__("no organisation with this slug", code="organisation_not_found")


class UserNotFound(NotFound):
    def __init__(self) -> None:
        super().__init__("no user with this user name", code="user_not_found")


class TokenNotFound(NotFound):
    def __init__(self) -> None:
        super().__init__("no API token with this id", code="token_not_found")


class OidcProviderUnknown(NotFound):
    def __init__(self) -> None:
        super().__init__("no identity provider with this name", code="oidc_provider_unknown")


class OrganisationExists(Conflict):
    def __init__(self) -> None:
        super().__init__("an organisation with this slug exists", code="organisation_exists")


class UserExists(Conflict):
    def __init__(self) -> None:
        super().__init__("a user with this user name exists", code="user_exists")
