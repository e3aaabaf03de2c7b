"""Assessment errors (see the tree in `hub.exceptions`); messages name no data value."""

from decimal import Decimal

from contracts.budget import text
from hub.exceptions import Conflict, Forbidden, HubError, Invalid, NotFound


class TemplateInvalid(Invalid):
    """A template that does not parse or names what the hub does not know."""

    def __init__(self, problems: list[str], *, code: str = "template_invalid") -> None:
        super().__init__("; ".join(problems), code=code)
        self.problems = problems


class TemplateNotFound(NotFound):
    def __init__(self) -> None:
        super().__init__(
            "no assessment template with this id and version", code="template_not_found"
        )


class TemplateExists(Conflict):
    def __init__(self) -> None:
        super().__init__("this template version is already registered", code="template_exists")


class RoundNotFound(NotFound):
    def __init__(self) -> None:
        super().__init__("no assessment round with this id", code="round_not_found")


class RoundInvalid(Invalid):
    def __init__(self, message: str, *, code: str = "round_invalid") -> None:
        super().__init__(message, code=code)


class RoundOverBudget(Forbidden):
    """A node cannot afford the round's DP indicators: nothing was started or charged."""

    def __init__(self, shortfalls: list[tuple[str, Decimal, Decimal]]) -> None:
        parts = [
            f"node {node} needs rho {text(need)} but has {text(left)} left "
            f"(short by {text(need - left)})"
            for node, need, left in shortfalls
        ]
        super().__init__("the round cannot start: " + "; ".join(parts), code="round_over_budget")
        self.shortfalls = shortfalls


class AnswerInvalid(Invalid):
    def __init__(self, message: str) -> None:
        super().__init__(message, code="answer_invalid")


class RoundNotRunning(Conflict):
    def __init__(self) -> None:
        super().__init__("the round is not collecting answers", code="round_not_running")


class IndicatorRefused(HubError):
    """A round's query the agreement refuses, re-raised naming its indicator (same code)."""

    def __init__(self, indicator_id: str, cause: HubError) -> None:
        super().__init__(f"indicator {indicator_id}: {cause.message}", code=cause.code)
        self.status_code = cause.status_code


class AnswerNotAllowed(Forbidden):
    def __init__(self) -> None:
        super().__init__("only the secretariat or the country's own team may answer for a country")
