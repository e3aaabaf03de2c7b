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


class InvalidRequest(RequestError):
    """A message that is not a valid request: a signed payload that is not the model this
    route takes, or a request that contradicts itself (expiring before it is issued)."""

    code = "invalid_request"


class WrongRoute(RequestError):
    """A request signed for secure aggregation, sent to the plain query route (or a plain
    request inside a secure phase): answering it would release per node, charged twice."""

    code = "wrong_route"


class RhoMismatch(RequestError):
    """The signed request's rho is not its spec's rho: the cost charged must be the one asked."""

    code = "rho_mismatch"


class QueryModeConflict(RequestError):
    """A query id already used in the other mode (plain release vs secure aggregation)."""

    code = "query_mode_conflict"


class ReleaseFailed(RequestError):
    """Computing a charged release failed; the charge was returned if no noise was drawn."""

    code = "release_failed"


class InvalidSpec(RequestError):
    """A spec malformed beyond its wire model: a column filtered twice, a level named twice."""

    code = "invalid_spec"
