"""Errors of the steward's web pages (codes mapped to HTTP in node/api/errors.py)."""

from node.exceptions import NodeError


class WebError(NodeError):
    code = "web_error"


class LoginRequired(WebError):
    """No valid browser session: the page redirects to the login form."""

    code = "login_required"


class CsrfRejected(WebError):
    """A state-changing form without the CSRF token of this browser session."""

    code = "csrf_failed"


class FormInvalid(WebError):
    """A form field is missing or malformed; the message names the field, never its value."""

    code = "form_invalid"
