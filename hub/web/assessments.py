"""Assessment pages: templates, planning and starting rounds, progress, answers, comparison
and publishing, for the secretariat; the answer form also for a country's own team.

Thin routes over `hub.assessments`, `hub.publications` and `hub.web.assessment_views`; every
form posts the session's CSRF token (checked by the hub's `get_current_user`). A form with
problems comes back with what was typed, each problem next to its field, and the summary
focused; nothing is stored or started.
"""

from typing import Annotated

import anyio.to_thread
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import RedirectResponse, Response
from starlette.datastructures import UploadFile

from hub.assessments import run, service
from hub.assessments.exceptions import AnswerNotAllowed, TemplateInvalid
from hub.assessments.templates import parse_template, validate_template
from hub.auth.schemas import User
from hub.deps import SessionDep, StateDep
from hub.exceptions import HubError, HubSetupError, NotFound
from hub.publications import service as publications
from hub.publications.i18n import LANGUAGES as SHEET_LANGUAGES
from hub.web import assessment_views as views
from hub.web import publication_jobs
from hub.web.deps import AnyViewer, Form, SecretariatViewer, Viewer, mark_web
from hub.web.templating import render, request_language
from runtime import edge

router = APIRouter(prefix="/assessments", dependencies=[Depends(mark_web)], include_in_schema=False)
# How often a page asks for progress while queries run or a fact sheet renders.
POLL_SECONDS = 2


class PublicationNotFound(NotFound):
    def __init__(self) -> None:
        super().__init__("no such publication, or it has expired", code="publication_not_found")


def _page(request: Request, viewer: Viewer, template: str, **context: object) -> Response:
    status = context.pop("status_code", 200)
    assert isinstance(status, int)
    return render(request, template, {"viewer": viewer, **context}, status_code=status)


def _see_other(path: str) -> RedirectResponse:
    return RedirectResponse(path, status_code=303)


# --- templates and rounds ---------------------------------------------------------------


@router.get("")
def index(request: Request, viewer: SecretariatViewer, session: SessionDep) -> Response:
    templates, rounds = views.index(session=session, language=request_language(request))
    return _page(request, viewer, "assessments.html", templates=templates, rounds=rounds)


@router.post("/templates")
async def upload_template(
    request: Request, form: Form, viewer: SecretariatViewer, state: StateDep
) -> Response:
    """Check an uploaded template against the hub's agreements; register it if asked."""
    upload = form.get("template")
    register = form.get("action") == "register"
    content = b""
    if isinstance(upload, UploadFile) and upload.filename:
        content = await upload.read(views.TEMPLATE_MAX_BYTES + 1)

    def work() -> Response:
        with state.sessions() as session:
            problems: list[str] = []
            error = None
            status = 422
            summary = None
            if not content:
                error = "file_missing"
            elif len(content) > views.TEMPLATE_MAX_BYTES:
                error = "file_too_big"
            else:
                try:
                    text = content.decode("utf-8")
                except UnicodeDecodeError:
                    error = "file_encoding"
                else:
                    try:
                        if register:
                            summary = service.register_template(
                                session=session, yaml_text=text, user=viewer.user
                            )
                        else:
                            template = validate_template(
                                parse_template(text),
                                service.catalogue_from_agreements(session=session),
                            )
                            summary = service.template_summary(template)
                    except TemplateInvalid as exc:
                        session.rollback()
                        error, problems = exc.code, exc.problems
                    except HubError as exc:
                        if exc.status_code >= 500:
                            raise
                        session.rollback()
                        error, status = exc.code, exc.status_code
            templates, rounds = views.index(session=session, language=request_language(request))
        return _page(
            request,
            viewer,
            "assessments.html",
            templates=templates,
            rounds=rounds,
            upload_error=error,
            problems=problems,
            checked=summary,
            registered=register and summary is not None,
            status_code=status if error else 200,
        )

    return await anyio.to_thread.run_sync(work)


@router.get("/rounds/new")
def new_round(
    request: Request,
    viewer: SecretariatViewer,
    session: SessionDep,
    template: Annotated[str | None, Query(max_length=80)] = None,
) -> Response:
    choices = views.plan_choices(session=session, language=request_language(request))
    form = views.RoundForm(values={"template": template or ""})
    return _page(request, viewer, "assessment_plan.html", choices=choices, form=form)


def _plan_page(
    request: Request,
    viewer: Viewer,
    session: SessionDep,
    form: views.RoundForm,
    choices: views.PlanChoices,
    *,
    refused: HubError | None = None,
) -> Response:
    """The plan form with each node's budget before and after the round, or its problems."""
    plan = rows = None
    if form.body is not None and refused is None:
        try:
            plan = service.plan_round(session=session, body=form.body, user=viewer.user).plan
        except HubError as exc:
            if exc.status_code >= 500:
                raise
            session.rollback()
            refused = exc
        else:
            rows = views.plan_rows(session=session, plan=plan, language=request_language(request))
    failed = bool(form.errors) or refused is not None
    return _page(
        request,
        viewer,
        "assessment_plan.html",
        choices=choices,
        form=form,
        plan=plan,
        rows=rows,
        refused=refused,
        status_code=(refused.status_code if refused else 422) if failed else 200,
    )


@router.post("/rounds/plan")
def plan_round(
    request: Request, form: Form, viewer: SecretariatViewer, session: SessionDep
) -> Response:
    """The plan: nothing is written or asked."""
    choices = views.plan_choices(session=session, language=request_language(request))
    return _plan_page(request, viewer, session, views.round_form(form, choices), choices)


@router.post("/rounds")
async def start_round(
    request: Request, form: Form, viewer: SecretariatViewer, state: StateDep
) -> Response:
    """Plan again and start: a node short of budget refuses the whole round (nothing asked)."""
    language = request_language(request)

    def check() -> tuple[views.PlanChoices, views.RoundForm]:
        with state.sessions() as session:
            choices = views.plan_choices(session=session, language=language)
            return choices, views.round_form(form, choices)

    choices, parsed = await anyio.to_thread.run_sync(check)
    refused: HubError | None = None
    if parsed.body is not None:
        try:
            if state.dispatcher is None:
                raise HubSetupError("the hub's dispatcher is not running", code="hub_not_started")
            round_id = await run.start_round(
                sessions=state.sessions,
                dispatcher=state.dispatcher,
                signals=state.signals,
                settings=state.settings,
                identity=state.identity,
                key=state.key,
                user=viewer.user,
                body=parsed.body,
            )
        except HubError as exc:
            if exc.status_code >= 500:
                raise
            refused = exc
        else:
            return _see_other(f"/assessments/rounds/{round_id}")

    def again() -> Response:
        with state.sessions() as session:
            return _plan_page(request, viewer, session, parsed, choices, refused=refused)

    return await anyio.to_thread.run_sync(again)


@router.get("/rounds/{round_id}")
def round_page(
    request: Request, round_id: str, viewer: SecretariatViewer, session: SessionDep
) -> Response:
    view = views.round_view(
        session=session, round_id=round_id, user=viewer.user, language=request_language(request)
    )
    return _page(request, viewer, "assessment_round.html", view=view, poll_seconds=POLL_SECONDS)


@router.get("/rounds/{round_id}/progress")
def round_progress(
    request: Request, round_id: str, viewer: SecretariatViewer, session: SessionDep
) -> Response:
    """The progress fragment; it keeps polling itself while a query runs."""
    view = views.round_view(
        session=session, round_id=round_id, user=viewer.user, language=request_language(request)
    )
    return _page(request, viewer, "_assessment_progress.html", view=view, poll_seconds=POLL_SECONDS)


# --- answers ----------------------------------------------------------------------------


def _answers_page(
    request: Request,
    viewer: Viewer,
    session: SessionDep,
    round_id: str,
    country: str,
    **context: object,
) -> Response:
    typed = context.pop("typed", None)
    bad = context.pop("bad", frozenset())
    assert typed is None or isinstance(typed, dict)
    assert isinstance(bad, frozenset)
    view = views.answers_view(
        session=session,
        round_id=round_id,
        country=country,
        user=viewer.user,
        language=request_language(request),
        typed=typed,
        bad=bad,
    )
    return _page(request, viewer, "assessment_answers.html", view=view, **context)


def _check_may_answer(session: SessionDep, user: User, country: str) -> None:
    if not service.may_answer(session=session, user=user, country=country):
        raise AnswerNotAllowed()


@router.get("/rounds/{round_id}/answers/{country}")
def answer_form(
    request: Request, round_id: str, country: str, viewer: AnyViewer, session: SessionDep
) -> Response:
    """The country team's form for the round's self-reported indicators."""
    _check_may_answer(session, viewer.user, country)
    return _answers_page(request, viewer, session, round_id, country)


@router.post("/rounds/{round_id}/answers/{country}")
def submit_answers(  # noqa: PLR0917 - FastAPI maps each parameter
    request: Request,
    round_id: str,
    country: str,
    form: Form,
    viewer: AnyViewer,
    session: SessionDep,
) -> Response:
    """Save every filled-in answer, or (on any bad one) none, each problem by its item."""
    _check_may_answer(session, viewer.user, country)
    typed = {k: v for k, v in form.items() if isinstance(v, str) and k != "csrf_token"}
    filled: dict[str, str | float] = {k: v.strip() for k, v in typed.items() if v.strip()}
    bad = frozenset(service.answer_problems(session=session, round_id=round_id, values=filled))
    if bad:
        return _answers_page(
            request, viewer, session, round_id, country, typed=typed, bad=bad, status_code=422
        )
    try:
        service.submit_answers(
            session=session, round_id=round_id, country=country, values=filled, user=viewer.user
        )
    except HubError as exc:
        if exc.status_code >= 500:
            raise
        session.rollback()
        return _answers_page(
            request,
            viewer,
            session,
            round_id,
            country,
            typed=typed,
            refused=exc.code,
            status_code=exc.status_code,
        )
    return _answers_page(request, viewer, session, round_id, country, saved=True)


# --- comparison -------------------------------------------------------------------------


@router.get("/rounds/{round_id}/compare")
def compare(
    request: Request,
    round_id: str,
    viewer: SecretariatViewer,
    session: SessionDep,
    previous: Annotated[str | None, Query(max_length=36)] = None,
) -> Response:
    language = request_language(request)
    view = views.comparison_view(
        session=session,
        round_id=round_id,
        user=viewer.user,
        language=language,
        previous_id=previous or None,
    )

    def level_label(dim: str, level: str) -> views.Text:
        return views.level_label(language, dim, level)

    return _page(request, viewer, "assessment_compare.html", view=view, level_label=level_label)


# --- publishing -------------------------------------------------------------------------


def _publish_page(  # noqa: PLR0917 - the page's whole context
    request: Request,
    viewer: Viewer,
    session: SessionDep,
    round_id: str,
    form: views.PublishForm,
    status_code: int = 200,
) -> Response:
    view = views.round_view(
        session=session, round_id=round_id, user=viewer.user, language=request_language(request)
    )
    return _page(
        request,
        viewer,
        "assessment_publish.html",
        view=view,
        form=form,
        formats=views.FORMATS,
        audiences=views.AUDIENCES,
        sheet_languages=SHEET_LANGUAGES,
        status_code=status_code,
    )


@router.get("/rounds/{round_id}/publish")
def publish_form(
    request: Request, round_id: str, viewer: SecretariatViewer, session: SessionDep
) -> Response:
    read = service.read_round(session=session, round_id=round_id, user=viewer.user)
    language = request_language(request)
    form = views.PublishForm(
        values={
            "format": "pdf",
            "lang": language if language in SHEET_LANGUAGES else "en",
            "audience": read.dissemination,
            "country": "",
        }
    )
    return _publish_page(request, viewer, session, round_id, form)


@router.post("/rounds/{round_id}/publications")
def publish(
    request: Request, round_id: str, form: Form, viewer: SecretariatViewer, state: StateDep
) -> Response:
    """Start rendering in the background; the job's page shows progress, then the file."""
    with state.sessions() as session:
        read = service.read_round(session=session, round_id=round_id, user=viewer.user)
        parsed = views.publish_form(form, read=read, languages=SHEET_LANGUAGES)
        if parsed.errors:
            return _publish_page(request, viewer, session, round_id, parsed, status_code=422)
    values = parsed.values
    fmt = values["format"]
    audience = values["audience"]
    country = values.get("country") or None
    language = values["lang"]

    def work() -> publications.Publication:
        with state.sessions() as session:
            return publications.publish(
                session=session,
                round_id=round_id,
                user=viewer.user,
                fmt=fmt,  # type: ignore[arg-type]  # checked against FORMATS
                audience=audience,  # type: ignore[arg-type]  # checked against AUDIENCES
                country=country,
                language=language,
            )

    job = publication_jobs.start(
        owner=viewer.user.name,
        round_id=round_id,
        fmt=fmt,
        language=language,
        audience=audience,
        country=country,
        work=work,
    )
    return _see_other(f"/assessments/publications/{job.job_id}")


def _job(job_id: str, viewer: Viewer) -> publication_jobs.Job:
    job = publication_jobs.get(job_id, owner=viewer.user.name)
    if job is None:
        raise PublicationNotFound()
    return job


@router.get("/publications/{job_id}")
def publication_page(
    request: Request, job_id: str, viewer: SecretariatViewer, session: SessionDep
) -> Response:
    job = _job(job_id, viewer)
    view = views.round_view(
        session=session,
        round_id=job.round_id,
        user=viewer.user,
        language=request_language(request),
    )
    return _page(
        request,
        viewer,
        "assessment_publication.html",
        job=job,
        view=view,
        poll_seconds=POLL_SECONDS,
    )


@router.get("/publications/{job_id}/progress")
def publication_progress(request: Request, job_id: str, viewer: SecretariatViewer) -> Response:
    job = _job(job_id, viewer)
    return _page(
        request, viewer, "_assessment_publication.html", job=job, poll_seconds=POLL_SECONDS
    )


@router.get("/publications/{job_id}/file")
def publication_file(job_id: str, viewer: SecretariatViewer) -> Response:
    job = _job(job_id, viewer)
    if job.publication is None:
        raise PublicationNotFound()
    result = job.publication
    headers = {
        "Content-Disposition": f'attachment; filename="{result.filename}"',
        "Cache-Control": "no-store",
    }
    if result.media_type.startswith("text/html"):
        headers["Content-Security-Policy"] = edge.document_policy(result.content.decode())
    return Response(result.content, media_type=result.media_type, headers=headers)
