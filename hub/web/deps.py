"""Dependencies of the web pages: who is viewing (with the CSRF token forms carry), by role."""

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from starlette.datastructures import FormData

from hub.auth import sessions
from hub.auth.schemas import Role, User
from hub.deps import CurrentUser, SessionDep, refuse_text, require
from runtime import edge


def mark_web(request: Request) -> None:
    """Runs first on every web route: errors there answer with a page, not JSON."""
    request.state.sauti_web = True


@dataclass(frozen=True)
class Viewer:
    """The signed-in person and the token their forms post back (`csrf_token`)."""

    user: User
    csrf_token: str

    def has(self, role: str) -> bool:
        return self.user.has(role)


def _viewer(user: User, session: SessionDep) -> Viewer:
    csrf = ""
    if user.via == "session" and user.session_id is not None:
        csrf = sessions.session_info(session=session, session_id=user.session_id).csrf_token
    return Viewer(user=user, csrf_token=csrf)


def any_viewer(user: CurrentUser, session: SessionDep) -> Viewer:
    return _viewer(user, session)


def viewer_with(*roles: Role) -> Callable[..., Viewer]:
    """A dependency letting only `roles` through (the hub's own role check, 403 otherwise)."""
    check = require(*roles)

    def dependency(user: Annotated[User, Depends(check)], session: SessionDep) -> Viewer:
        return _viewer(user, session)

    return dependency


AnyViewer = Annotated[Viewer, Depends(any_viewer)]
AnalystViewer = Annotated[Viewer, Depends(viewer_with("analyst"))]
StewardViewer = Annotated[Viewer, Depends(viewer_with("steward"))]
SecretariatViewer = Annotated[Viewer, Depends(viewer_with("secretariat", "admin"))]
AuditorViewer = Annotated[Viewer, Depends(viewer_with("auditor", "admin"))]


async def form_data(request: Request) -> AsyncIterator[FormData]:
    # Parsed once: the CSRF check in `get_current_user` reads the same cached form.
    form = await request.form()
    try:
        refuse_text(edge.forbidden_in_form(form.multi_items()))
        yield form
    finally:
        await form.close()  # uploaded files are spooled to temporary files


Form = Annotated[FormData, Depends(form_data)]
