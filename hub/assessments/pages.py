"""The country team's answer form (server-rendered, one POST saves every answer or none)."""

from functools import cache

from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, select_autoescape
from sqlalchemy.orm import Session

from hub.assessments import service
from hub.assessments.exceptions import AnswerInvalid, AnswerNotAllowed, RoundInvalid
from hub.assessments.templates import ChoiceAnswer, NumberAnswer, RubricAnswer
from hub.exceptions import HubError
from hub.web.deps import Viewer


@cache
def _environment() -> Environment:
    return Environment(
        loader=PackageLoader("hub.assessments", "pages"),
        autoescape=select_autoescape(["html"], default=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _render(
    *,
    session: Session,
    round_id: str,
    country: str,
    viewer: Viewer,
    error: str | None = None,
    saved: bool = False,
    status_code: int = 200,
) -> HTMLResponse:
    row, template, answers = service.answer_form_data(
        session=session, round_id=round_id, country=country
    )
    items = []
    for ind in template.self_reported:
        spec = ind.answer
        current = answers.get(ind.id)
        items.append(
            {
                "id": ind.id,
                "title": ind.title,
                "kind": spec.type,
                "options": spec.options if isinstance(spec, ChoiceAnswer) else (),
                "levels": spec.levels if isinstance(spec, RubricAnswer) else (),
                "minimum": spec.minimum if isinstance(spec, NumberAnswer) else None,
                "maximum": spec.maximum if isinstance(spec, NumberAnswer) else None,
                "current": "" if current is None else str(current.value),
            }
        )
    html = (
        _environment()
        .get_template("answers.html")
        .render(
            round=row,
            template=template,
            country=country,
            items=items,
            csrf_token=viewer.csrf_token,
            error=error,
            saved=saved,
        )
    )
    return HTMLResponse(html, status_code=status_code, headers={"Cache-Control": "no-store"})


def answer_form(*, session: Session, round_id: str, country: str, viewer: Viewer) -> HTMLResponse:
    if not service.may_answer(session=session, user=viewer.user, country=country):
        raise AnswerNotAllowed()
    return _render(session=session, round_id=round_id, country=country, viewer=viewer)


def submit_form(
    *, session: Session, round_id: str, country: str, viewer: Viewer, values: dict[str, str]
) -> HTMLResponse:
    """Save every filled-in answer, or (on any bad answer) none, re-showing the form."""
    if not service.may_answer(session=session, user=viewer.user, country=country):
        raise AnswerNotAllowed()
    filled: dict[str, str | float] = {k: v.strip() for k, v in values.items() if v.strip()}
    try:
        service.submit_answers(
            session=session, round_id=round_id, country=country, values=filled, user=viewer.user
        )
    except (AnswerInvalid, RoundInvalid) as exc:
        session.rollback()
        return _render(
            session=session,
            round_id=round_id,
            country=country,
            viewer=viewer,
            error=exc.message,
            status_code=exc.status_code,
        )
    except HubError:
        session.rollback()
        raise
    return _render(session=session, round_id=round_id, country=country, viewer=viewer, saved=True)
