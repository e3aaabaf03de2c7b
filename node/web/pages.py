"""Rendering of the steward pages: the Jinja2 environment, the page context and error pages.

Routes that raise a node error get an HTML page with the status of node/api/errors.py's
one mapping (an API client gets JSON from the same codes); no session means a redirect to
the login form.
"""

from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from jinja2 import ChoiceLoader, Environment, FileSystemLoader, select_autoescape

from node.api.errors import STATUS_BY_CODE
from node.auth.exceptions import PasswordChangeRequired
from node.exceptions import NodeError
from node.home import load_identity
from node.settings import NodeSettings
from node.web import i18n
from node.web.exceptions import LoginRequired
from node.web.session import LANGUAGE_COOKIE, PREFIX, BrowserSession
from runtime.pages import shared_templates

TEMPLATES = Path(__file__).parent / "templates"
_env = Environment(
    # The node's pages, then what both sides' pages share (the role guides' macros).
    loader=ChoiceLoader([FileSystemLoader(TEMPLATES), shared_templates()]),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)
# No inline script or style anywhere: the pages load only their own files.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; font-src 'self'; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
# Error codes with their own title; others show the generic one with the node's message.
ERROR_TITLES: dict[str, str] = {
    "csrf_failed": i18n.N_("This form has expired"),
    "form_invalid": i18n.N_("Something in the form needs fixing"),
    "agreement_invalid": i18n.N_("This agreement cannot be signed"),
    "agreement_unknown": i18n.N_("No such agreement"),
    "agreement_revoked": i18n.N_("This agreement is revoked"),
    "term_not_in_contract": i18n.N_("This agreement cannot be signed"),
    "unknown_dataset": i18n.N_("No such dataset"),
    "hub_unreachable": i18n.N_("The hub could not be reached"),
    "password_rejected": i18n.N_("That password cannot be used"),
}


def language(request: Request) -> str:
    return i18n.negotiate(
        request.cookies.get(LANGUAGE_COOKIE), request.headers.get("accept-language")
    )


def render(
    request: Request,
    template: str,
    *,
    status: int = 200,
    session: BrowserSession | None = None,
    **context: Any,
) -> HTMLResponse:
    translator = i18n.Translator(language(request))
    settings: NodeSettings = request.app.state.settings
    html = _env.get_template(template).render(
        **translator.helpers(),
        **context,
        prefix=PREFIX,
        path=request.url.path,
        here=_here(request),
        steward=session.steward if session else None,
        csrf=session.csrf if session else "",
        node_name=_node_name(settings),
    )
    response = HTMLResponse(html, status_code=status)
    response.headers.update(SECURITY_HEADERS)
    return response


def _here(request: Request) -> str:
    query = f"?{request.url.query}" if request.url.query else ""
    return request.url.path + query


def _node_name(settings: NodeSettings) -> str:
    try:
        return load_identity(settings.home).name
    except NodeError:
        return ""


def safe_next(target: str | None) -> str:
    """A local steward page to go back to; anything else (another site) becomes the dashboard."""
    if target and target.startswith(PREFIX + "/") and "\\" not in target and "//" not in target:
        return target
    return PREFIX + "/"


def redirect(target: str) -> RedirectResponse:
    return RedirectResponse(target, status_code=303)


def error_page(request: Request, *, code: str, message: str, status: int) -> HTMLResponse:
    return render(
        request,
        "error.html",
        status=status,
        code=code,
        title=ERROR_TITLES.get(code, i18n.N_("The node refused this")),
        message=message,
    )


class WebRoute(APIRoute):
    """A page route: node errors become HTML error pages, a missing session a login redirect."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def page(request: Request) -> Response:
            try:
                return await handler(request)
            except LoginRequired:
                target = quote(_here(request), safe="/")
                return redirect(f"{PREFIX}/login?next={target}")
            except PasswordChangeRequired:
                return redirect(f"{PREFIX}/password")
            except NodeError as exc:
                status = STATUS_BY_CODE.get(exc.code, 400)
                return error_page(request, code=exc.code, message=exc.message, status=status)
            except RequestValidationError as exc:
                fields = sorted(
                    {str(err.get("loc", ("", ""))[-1]) for err in exc.errors() if err.get("loc")}
                )
                return error_page(
                    request,
                    code="form_invalid",
                    message="missing or malformed fields: " + ", ".join(fields),
                    status=STATUS_BY_CODE["form_invalid"],
                )

        return page
