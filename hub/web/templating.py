"""The Jinja2 environment of the web pages: autoescaping, gettext per request, filters."""

import gettext
from contextvars import ContextVar
from datetime import datetime
from functools import cache
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import ChoiceLoader, Environment, PackageLoader, select_autoescape

from hub.web.i18n import (
    LANGUAGE_COOKIE,
    LANGUAGES,
    choose_language,
    format_number,
    format_significant,
    translations,
)
from runtime.pages import shared_templates

# The catalogue of the page being rendered: set around each render (renders are synchronous).
_current: ContextVar[gettext.NullTranslations | None] = ContextVar(
    "sauti_web_translations", default=None
)
_ENGLISH = gettext.NullTranslations()


# Only this site's own files run, are styled, framed or posted to; pages are never cached.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
        " font-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none';"
        " base-uri 'none'; object-src 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def _gettext(message: str) -> str:
    return (_current.get() or _ENGLISH).gettext(message)


def _ngettext(singular: str, plural: str, n: int) -> str:
    return (_current.get() or _ENGLISH).ngettext(singular, plural, n)


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value is not None else "—"


@cache
def environment() -> Environment:
    env = Environment(
        # The hub's pages, then what both sides' pages share (the role guides' macros).
        loader=ChoiceLoader([PackageLoader("hub.web", "templates"), shared_templates()]),
        autoescape=select_autoescape(["html"], default=True),
        trim_blocks=True,
        lstrip_blocks=True,
        extensions=["jinja2.ext.i18n"],
    )
    # newstyle: `_("... %(x)s", x=v)` escapes `v` under autoescape.
    env.install_gettext_callables(_gettext, _ngettext, newstyle=True)  # type: ignore[attr-defined]
    env.filters["when"] = _when
    env.globals["languages"] = LANGUAGES
    return env


def request_language(request: Request) -> str:
    return choose_language(
        cookie=request.cookies.get(LANGUAGE_COOKIE),
        accept_language=request.headers.get("accept-language"),
    )


def render(
    request: Request,
    template: str,
    context: dict[str, Any] | None = None,
    *,
    status_code: int = 200,
) -> HTMLResponse:
    """Render `template` in the request's language, as an HTML response."""
    language = request_language(request)
    html = render_text(
        template,
        language=language,
        context={"request": request, "path": request.url.path, **(context or {})},
    )
    headers = {"Content-Language": language, **PAGE_HEADERS}
    return HTMLResponse(html, status_code=status_code, headers=headers)


def render_text(template: str, *, language: str, context: dict[str, Any]) -> str:
    """`template` rendered in `language` (a page, or the HTML a PDF is printed from)."""
    token = _current.set(translations(language))
    try:
        return (
            environment()
            .get_template(template)
            .render(
                lang=language,
                num=lambda value, digits=2: format_number(value, language=language, digits=digits),
                sig=lambda value, figures=3: format_significant(
                    value, language=language, figures=figures
                ),
                **context,
            )
        )
    finally:
        _current.reset(token)
