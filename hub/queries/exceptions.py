"""Query errors: refusals against an agreement's terms, and of what nodes send back (see
the tree in `hub.exceptions`)."""

from hub.exceptions import Conflict, Forbidden, Invalid, NotFound


class QueryNotFound(NotFound):
    def __init__(self) -> None:
        super().__init__("no query with this id", code="query_not_found")


class QueryOfOtherOrg(Forbidden):
    def __init__(self) -> None:
        super().__init__("analysts see only their own organisation's queries")


class QueryNotFinished(Conflict):
    def __init__(self) -> None:
        super().__init__("the query has not finished", code="query_not_finished")


class TtlTooLong(Invalid):
    def __init__(self, max_seconds: int) -> None:
        super().__init__(
            f"ttl_seconds may be at most {max_seconds} on this hub", code="ttl_too_long"
        )


class OrgNotPermitted(Forbidden):
    def __init__(self) -> None:
        super().__init__(
            "the analyst's organisation is not among the agreement's analyst organisations",
            code="org_not_permitted",
        )


class CostOverCap(Forbidden):
    def __init__(self) -> None:
        super().__init__("rho exceeds the agreement's per-query cap", code="cost_over_cap")


class TermViolation(Invalid):
    """The spec asks for something the agreement does not allow; names columns, not values."""


class TaskUnknown(NotFound):
    def __init__(self) -> None:
        super().__init__("no open task of this node has this query id", code="task_unknown")


class ReleaseRejected(Invalid):
    def __init__(self, message: str) -> None:
        super().__init__(message, code="release_invalid")


class ContractViolation(TermViolation):
    """The spec names a column or level that no node's public contract has (or a measure
    the column's type cannot take). `field` is the form field, `value` what was asked and
    `allowed` the public levels, so a page can say it next to the field."""

    def __init__(
        self,
        message: str,
        *,
        code: str,
        field: str,
        value: str,
        allowed: tuple[str, ...] = (),
    ) -> None:
        super().__init__(message, code=code)
        self.field = field
        self.value = value
        self.allowed = allowed
