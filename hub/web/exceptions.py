"""Errors of the web pages (see the tree in `hub.exceptions`); they render as pages.

FormInvalid (422)        form_invalid: a form failed its checks (fields named, no values)
QueryStillRunning (409)  query_running: a download of a result that is not complete yet
"""

from hub.exceptions import Conflict, Invalid


class FormInvalid(Invalid):
    """`fields` names the form fields at fault, so a page can mark each one."""

    def __init__(self, message: str, *, fields: tuple[str, ...] = ()) -> None:
        super().__init__(message, code="form_invalid")
        self.fields = fields


class QueryStillRunning(Conflict):
    def __init__(self) -> None:
        super().__init__(
            "the query is still running: download once it completes", code="query_running"
        )
