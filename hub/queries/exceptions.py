"""Query errors (see the tree in `hub.exceptions`)."""

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
