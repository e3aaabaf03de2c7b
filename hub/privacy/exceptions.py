"""Refusals of a query against its agreement's terms (see the tree in `hub.exceptions`)."""

from hub.exceptions import Forbidden, Invalid


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
