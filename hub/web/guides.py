"""The role guides and quick cards: pages anyone may read, and the same text as PDF.

The guides are templates under `templates/help/`, translated through the pages' own
catalogue. A guide names a page's button or field with `ui("message")`, the very msgid
the page shows, and a picture with `picture("role-step", caption)`: the screenshot the
browser journey of that step saved under `static/guides/<language>/` (see
tests/web/guide_shots.py). The steward guide lives with the node's pages; the hub serves
the stewards' quick card, so a workshop can print every card from one place.
"""

import functools
from pathlib import Path
from typing import Annotated, Literal

import anyio.to_thread
from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import Response

from hub.deps import OptionalUser
from hub.publications import fonts
from hub.publications.factsheet import to_pdf
from hub.web.deps import mark_web
from hub.web.templating import PAGE_HEADERS, render, render_text, request_language

GUIDES_DIR = Path(__file__).parent / "static" / "guides"
GUIDES_URL = "/static/hub/guides"
# Screenshots are JPEG: a page photographed at 1280 px is a tenth the size of a PNG.
SHOT_SUFFIX = ".jpg"
PAPERS = {"a4": "A4", "a5": "A5"}

Role = Literal["analyst", "secretariat", "auditor"]
CardRole = Literal["steward", "analyst", "secretariat", "auditor"]
CARD_ROLES: tuple[CardRole, ...] = ("steward", "analyst", "secretariat", "auditor")

router = APIRouter(dependencies=[Depends(mark_web)], include_in_schema=False)


def install(app: FastAPI) -> None:
    app.include_router(router)


def shot_finder(language: str, *, base: str) -> "functools.partial[str | None]":
    return functools.partial(_shot, language, base)


def _shot(language: str, base: str, name: str) -> str | None:
    """The address of screenshot `name` in `language`, or None when it was never taken."""
    relative = f"{language}/{name}{SHOT_SUFFIX}"
    return f"{base}/{relative}" if (GUIDES_DIR / relative).is_file() else None


@router.get("/help")
def help_index(request: Request, user: OptionalUser) -> Response:
    return render(request, "help/index.html", {"viewer_user": user, "roles": CARD_ROLES})


@router.get("/help/{role}")
def guide_page(request: Request, role: Role, user: OptionalUser) -> Response:
    language = request_language(request)
    context = {
        "viewer_user": user,
        "layout": "help/page.html",
        "role": role,
        "shot": shot_finder(language, base=GUIDES_URL),
    }
    return render(request, f"help/{role}.html", context)


@router.get("/help/{role}/guide.pdf")
async def guide_pdf(request: Request, role: Role) -> Response:
    language = request_language(request)
    pdf = await anyio.to_thread.run_sync(_guide_pdf, role, language)
    return _pdf(pdf, f"sauti-{role}-guide-{language}.pdf", language)


@router.get("/help/cards/{role}.pdf")
async def card_pdf(
    request: Request,
    role: CardRole,
    paper: Annotated[Literal["a4", "a5"], Query()] = "a4",
) -> Response:
    language = request_language(request)
    pdf = await anyio.to_thread.run_sync(_card_pdf, role, language, paper)
    return _pdf(pdf, f"sauti-{role}-card-{paper}-{language}.pdf", language)


def _pdf(pdf: bytes, filename: str, language: str) -> Response:
    headers = {
        "Content-Disposition": f'attachment; filename="{filename}"',
        "Content-Language": language,
        "X-Content-Type-Options": PAGE_HEADERS["X-Content-Type-Options"],
    }
    return Response(pdf, media_type="application/pdf", headers=headers)


def _print_context(language: str, paper: str, *, card: bool) -> dict[str, object]:
    return {
        "layout": "help/print.html",
        "paper": PAPERS[paper],
        "card": card,
        "font_faces": fonts.font_face_css(embed_files=True),
        "font_stack": fonts.FAMILY_STACK,
        "shot": shot_finder(language, base=GUIDES_DIR.as_uri()),
    }


# The texts only change with a release: each PDF is printed once per process.
@functools.cache
def _guide_pdf(role: str, language: str) -> bytes:
    context = {"role": role, **_print_context(language, "a4", card=False)}
    return to_pdf(render_text(f"help/{role}.html", language=language, context=context))


@functools.cache
def _card_pdf(role: str, language: str, paper: str) -> bytes:
    context = {"role": role, **_print_context(language, paper, card=True)}
    return to_pdf(render_text("help/card.html", language=language, context=context))
