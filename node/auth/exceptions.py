"""Errors of steward authentication (codes mapped to HTTP in node/api/errors.py)."""

from node.exceptions import NodeError


class Unauthenticated(NodeError):
    code = "unauthenticated"


class TokenExpired(Unauthenticated):
    code = "token_expired"


class LoginFailed(Unauthenticated):
    # One code for unknown user, wrong password, wrong code, disabled and locked account, so
    # answers do not tell which user names exist.
    code = "login_failed"


class PasswordChangeRequired(NodeError):
    code = "password_change_required"


class PasswordRejected(NodeError):
    code = "password_rejected"


class TotpInvalid(NodeError):
    code = "totp_invalid"


class StewardExists(NodeError):
    code = "steward_exists"


class AccountUnknown(NodeError):
    code = "steward_unknown"
