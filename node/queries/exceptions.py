"""Errors of checking a signed query request (see node.exceptions)."""

from node.exceptions import RequestError


class Unsigned(RequestError):
    code = "unsigned"


class SignatureRejected(RequestError):
    code = "signature_invalid"


class WrongNode(RequestError):
    code = "wrong_node"


class RequestExpired(RequestError):
    code = "request_expired"


class ControlCharacters(RequestError):
    code = "invalid_request"


class SecureNotAllowed(RequestError):
    code = "secure_not_allowed"


class SecureSessionUnknown(RequestError):
    code = "secure_session_unknown"


class RosterInvalid(RequestError):
    code = "roster_invalid"
