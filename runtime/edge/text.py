"""Which characters a request's text may carry, and where: the one rule both apps apply.

Refused everywhere: NUL and the other C0 controls, DEL, the C1 controls and lone surrogates.
PostgreSQL cannot store NUL in text (every query naming one fails), a lone surrogate (a JSON
`\\ud800` escape) cannot be encoded as UTF-8 for a database, a file or a response, and
control characters forge log lines and terminal output. No name, code, term or free text of
this product needs any of them.

TAB, LF and CR are ordinary whitespace in free text (an agreement's purpose, enrollment notes,
answers, messages), so they are allowed in body values: JSON string values and form field
values. Everything single-line refuses them too: path segments, query parameters and every
key (JSON object keys, form field names). Identifiers in bodies (user names, slugs, node
ids, codes) are narrower still through their own patterns in the request models.
"""

import re
from collections.abc import Iterable, Iterator
from typing import Any

Location = tuple[str | int, ...]

_SINGLE_LINE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_MULTI_LINE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
# Enough to name what is wrong; a body with thousands of bad strings gets the first few.
MAX_LOCATIONS = 10
ERROR_TYPE = "control_character"
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def _bad(text: str, *, multiline: bool) -> bool:
    return (_MULTI_LINE if multiline else _SINGLE_LINE).search(text) is not None


def _walk(value: object, loc: Location, *, multiline: bool) -> Iterator[Location]:
    if isinstance(value, str):
        if _bad(value, multiline=multiline):
            yield loc
    elif isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str) and _bad(key, multiline=False):
                yield (*loc, _printable(key))
            yield from _walk(item, (*loc, key), multiline=multiline)
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from _walk(item, (*loc, index), multiline=multiline)


def _printable(key: str) -> str:
    """A key that is itself bad is named with its bad characters escaped."""
    return key.encode("unicode_escape", "backslashreplace").decode("ascii")


def forbidden_in(
    value: object, loc: Location = ("body",), *, multiline: bool = True
) -> list[Location]:
    """Where in a parsed JSON value (or any str/dict/list tree) a forbidden character sits."""
    found: list[Location] = []
    for where in _walk(value, loc, multiline=multiline):
        found.append(where)
        if len(found) >= MAX_LOCATIONS:
            break
    return found


def forbidden_in_form(
    items: Iterable[tuple[str, Any]], loc: Location = ("body",)
) -> list[Location]:
    """Form fields: names are single-line, text values may hold TAB/LF/CR, files are data."""
    found: list[Location] = []
    for name, value in items:
        if _bad(name, multiline=False):
            found.append((*loc, _printable(name)))
        elif isinstance(value, str) and _bad(value, multiline=True):
            found.append((*loc, name))
        if len(found) >= MAX_LOCATIONS:
            break
    return found


async def forbidden_in_request(request: Any) -> list[Location]:
    """Path and query parameters, and the body if the framework already parsed it.

    `request` is a Starlette request (duck-typed: this package imports no web library).
    A body is looked at only when the route declared one, so it is parsed and cached
    already: nothing is read twice, and a route that streams its own body (an upload, a
    signed message read under a limit) is left to check what it parses itself.
    """
    found: list[Location] = [
        ("path", name)
        for name, value in request.path_params.items()
        if isinstance(value, str) and _bad(value, multiline=False)
    ]
    for name, value in request.query_params.multi_items():
        if _bad(name, multiline=False) or _bad(value, multiline=False):
            found.append(("query", _printable(name)))
    route = request.scope.get("route")
    if getattr(route, "body_field", None) is not None:
        content_type = request.headers.get("content-type", "")
        if content_type.startswith(FORM_TYPES):
            found += forbidden_in_form((await request.form()).multi_items())
        elif _is_json(content_type) and await request.body():
            found += forbidden_in(await request.json())
    return found[:MAX_LOCATIONS]


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


def validation_errors(locations: Iterable[Location]) -> list[dict[str, Any]]:
    """Pydantic-style errors for the apps' one validation handler (never echoing the input)."""
    return [
        {
            "type": ERROR_TYPE,
            "loc": loc,
            "msg": "control characters (or NUL) are not allowed here",
            "input": None,
        }
        for loc in locations
    ]
