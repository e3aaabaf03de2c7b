"""Routes of assessments: templates, rounds (plan, start, status), answers, results, publishing.

JSON under /v1/assessments; the pages (the country teams' answer form among them) are in
`hub.web.assessments`.
"""

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query, Response

from contracts.v1.agreement import Dissemination
from hub.assessments import run, service
from hub.assessments.exceptions import AnswerNotAllowed
from hub.assessments.schemas import (
    AnswerIn,
    AnswerRead,
    Comparison,
    RoundCreate,
    RoundPlan,
    RoundRead,
    RoundResults,
    TemplateCreate,
    TemplateSummary,
)
from hub.auth.schemas import User
from hub.deps import CurrentUser, Secretariat, SessionDep, StateDep, require
from hub.exceptions import HubSetupError
from hub.publications import service as publications
from runtime import edge

router = APIRouter(prefix="/v1/assessments", tags=["assessments"])

# Reading rounds and their results: the secretariat, and auditors (read-only).
Reader = Annotated[User, Depends(require("secretariat", "admin", "auditor"))]
Wait = Annotated[float, Query(ge=0, le=600, description="Seconds to wait for the queries.")]


@router.get("/templates")
def list_templates(_user: CurrentUser, session: SessionDep) -> list[TemplateSummary]:
    return service.list_templates(session=session)


@router.post("/templates", status_code=201)
def register_template(
    body: TemplateCreate, user: Secretariat, session: SessionDep
) -> TemplateSummary:
    return service.register_template(session=session, yaml_text=body.yaml, user=user)


@router.post("/rounds/plan")
def plan_round(body: RoundCreate, user: Secretariat, session: SessionDep) -> RoundPlan:
    """The cost of every DP indicator per node against its remaining budget; starts nothing."""
    return service.plan_round(session=session, body=body, user=user).plan


@router.post("/rounds", status_code=201)
async def start_round(
    body: RoundCreate, user: Secretariat, state: StateDep, wait: Wait = 0
) -> RoundRead:
    """Plan, refuse if any node cannot afford it (nothing asked), then ask every query."""
    if state.dispatcher is None:
        raise HubSetupError("the hub's dispatcher is not running", code="hub_not_started")
    round_id = await run.start_round(
        sessions=state.sessions,
        dispatcher=state.dispatcher,
        signals=state.signals,
        settings=state.settings,
        identity=state.identity,
        key=state.key,
        user=user,
        body=body,
    )
    return await run.wait_round(
        sessions=state.sessions,
        signals=state.signals,
        settings=state.settings,
        round_id=round_id,
        user=user,
        wait_seconds=wait,
    )


@router.get("/rounds")
def list_rounds(_user: Reader, session: SessionDep) -> list[RoundRead]:
    return service.list_rounds(session=session)


@router.get("/rounds/{round_id}")
async def read_round(round_id: str, user: Reader, state: StateDep, wait: Wait = 0) -> RoundRead:
    """Status per country; `wait` long-polls until the round's queries have finished."""
    return await run.wait_round(
        sessions=state.sessions,
        signals=state.signals,
        settings=state.settings,
        round_id=round_id,
        user=user,
        wait_seconds=wait,
    )


@router.post("/rounds/{round_id}/close", status_code=204)
def close_round(round_id: str, user: Secretariat, session: SessionDep) -> None:
    service.close_round(session=session, round_id=round_id, user=user)


@router.put("/rounds/{round_id}/answers/{country}/{indicator_id}")
def answer(  # noqa: PLR0917 - FastAPI maps each parameter
    round_id: str,
    country: str,
    indicator_id: str,
    body: AnswerIn,
    user: CurrentUser,
    session: SessionDep,
) -> AnswerRead:
    """A country team's answer (the secretariat may answer for any country)."""
    if not service.may_answer(session=session, user=user, country=country):
        raise AnswerNotAllowed()
    return service.submit_answer(
        session=session,
        round_id=round_id,
        country=country,
        indicator_id=indicator_id,
        body=body,
        user=user,
    )


@router.get("/rounds/{round_id}/results")
def results(round_id: str, user: Reader, session: SessionDep) -> RoundResults:
    return service.round_results(session=session, round_id=round_id, user=user)


@router.get("/rounds/{round_id}/comparison")
def compare(
    round_id: str,
    user: Reader,
    session: SessionDep,
    previous: Annotated[str | None, Query(max_length=36)] = None,
) -> Comparison:
    return service.compare_rounds(
        session=session, round_id=round_id, user=user, previous_id=previous
    )


@router.get(
    "/rounds/{round_id}/publication",
    response_class=Response,
    responses=edge.file_answer(
        *(m.replace("; charset=utf-8", "") for m in publications.MEDIA_TYPES.values())
    ),
)
def publication(  # noqa: PLR0917 - FastAPI maps each parameter
    round_id: str,
    user: Secretariat,
    session: SessionDep,
    fmt: Annotated[publications.Format, Query(alias="format")] = "html",
    audience: Dissemination = "restricted",
    country: Annotated[str | None, Query(pattern=r"^\d{3}$")] = None,
    lang: Annotated[str, Query(max_length=5)] = "en",
) -> Response:
    """A fact sheet (per country, or cross-country without `country`) or a data file.

    `audience` may not be broader than the round's dissemination level (403
    `dissemination_not_allowed`). Missing translations fall back to English and are listed
    in the `X-Sauti-Missing-Translations` header (URL-encoded, `; `-separated).
    """
    result = publications.publish(
        session=session,
        round_id=round_id,
        user=user,
        fmt=fmt,
        audience=audience,
        country=country,
        language=lang,
    )
    headers = {"Content-Disposition": f'attachment; filename="{result.filename}"'}
    if result.missing_translations:
        headers["X-Sauti-Missing-Translations"] = quote("; ".join(result.missing_translations))
    if result.media_type.startswith("text/html"):
        headers["Content-Security-Policy"] = edge.document_policy(result.content.decode())
    return Response(content=result.content, media_type=result.media_type, headers=headers)
