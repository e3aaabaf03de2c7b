"""Errors on web pages: a page in the reader's language instead of JSON, login when needed.

Called from the hub's one error mapping (`hub.errors`) for requests a web route handled.
"""

from urllib.parse import quote

from fastapi import Request
from fastapi.responses import RedirectResponse, Response

from hub.web.templating import render


def is_web(request: Request) -> bool:
    return bool(getattr(request.state, "sauti_web", False))


def login_url(next_path: str) -> str:
    return "/login?next=" + quote(next_path, safe="/")


def error_page(request: Request, *, status: int, code: str, message: str) -> Response:
    """401: to the login page (back here after); a pending password change: to its form;
    otherwise a page naming the code."""
    if status == 401 and code != "login_failed":
        target = login_url(request.url.path if request.method == "GET" else "/")
        if request.headers.get("hx-request"):
            # htmx swaps fragments; a full-page redirect must be asked for explicitly.
            return Response(status_code=401, headers={"HX-Redirect": target})
        return RedirectResponse(target, status_code=303)
    if code == "password_change_required":
        return RedirectResponse("/password", status_code=303)
    user = getattr(request.state, "sauti_user", None)
    return render(
        request,
        "error.html",
        {"status": status, "code": code, "message": message, "viewer_user": user},
        status_code=status,
    )
