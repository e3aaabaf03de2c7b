"""Routes of the steward pages (/steward/...): thin, each calls one service function and renders."""

from dataclasses import replace
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from node.api.deps import SettingsDep, refuse_text
from node.auth import service as auth
from node.auth.exceptions import (
    LoginFailed,
    PasswordChangeRequired,
    PasswordRejected,
)
from node.datasets import uploads
from node.datasets.exceptions import ContractConflict, ContractInvalid
from node.datasets.schemas import ValidationReport
from node.exceptions import DatasetError, NodeError
from node.harmonisation.exceptions import HarmonisationError
from node.settings import NodeSettings
from node.web import fonts, forms, multipart, service, session
from node.web.exceptions import FormInvalid, LoginRequired
from node.web.i18n import LANGUAGES
from node.web.multipart import Form as UploadForm
from node.web.pages import WebRoute, language, redirect, render, safe_next
from node.web.session import LANGUAGE_COOKIE, PREFIX, BrowserSession
from runtime import edge

router = APIRouter(prefix=PREFIX, route_class=WebRoute, include_in_schema=False)
# The import form's body is a data file: included under NODE_IMPORT_MAX_BYTES (node/app.py).
# Routes that take a data upload: the app mounts them with the import size limit.
upload_routes = APIRouter(prefix=PREFIX, route_class=WebRoute, include_in_schema=False)
STATIC_DIR = Path(__file__).parent / "static"
static_files = StaticFiles(directory=STATIC_DIR)
# Screenshots the browser journeys saved for the guide (tests/web/guide_shots.py), as JPEG.
GUIDE_SHOTS = STATIC_DIR / "guides"
# What a steward whose password was reset may still open.
_PASSWORD_CHANGE_PAGES = frozenset({f"{PREFIX}/password", f"{PREFIX}/logout"})

DatasetName = Annotated[str, PathParam(pattern=r"^[a-z][a-z0-9_]{0,62}$")]
AgreementId = Annotated[str, PathParam(pattern=r"^[a-z0-9][a-z0-9._-]{0,99}$")]
Version = Annotated[int, PathParam(ge=1, le=1_000_000)]
Csrf = Annotated[str, Form()]


def _session(request: Request, settings: SettingsDep) -> BrowserSession:
    browser = session.current(request, settings)
    if browser.steward.must_change_password and request.url.path not in _PASSWORD_CHANGE_PAGES:
        raise PasswordChangeRequired("the password was reset: change it before anything else")
    return browser


SessionDep = Annotated[BrowserSession, Depends(_session)]


# --- help ----------------------------------------------------------------------------------------


@router.get("/help", response_class=HTMLResponse)
def help_page(request: Request, settings: SettingsDep) -> Response:
    """The stewards' guide: anyone may read it; a signed-in steward keeps the menu."""
    try:
        browser: BrowserSession | None = session.current(request, settings)
    except LoginRequired:
        browser = None
    lang = language(request)

    def shot(name: str) -> str | None:
        relative = f"{lang}/{name}.jpg"
        found = (GUIDE_SHOTS / relative).is_file()
        return f"{PREFIX}/static/guides/{relative}" if found else None

    return render(request, "help/steward.html", session=browser, shot=shot)


# --- login, logout, password, language -----------------------------------------------------------


@router.get("/login", response_class=HTMLResponse)
async def login_form(request: Request, settings: SettingsDep, next: str = "") -> Response:
    token, cookie = session.login_csrf(request, settings)
    response = render(request, "login.html", next=safe_next(next), error=None, login_csrf=token)
    if cookie is not None:
        session.set_login_cookie(response, settings, cookie)
    return response


@router.post("/login", response_class=HTMLResponse)
async def login(
    *,
    request: Request,
    settings: SettingsDep,
    username: Annotated[str, Form(max_length=200)],
    password: Annotated[str, Form(max_length=1024)],
    csrf_token: Csrf = "",
    totp: Annotated[str, Form(max_length=12)] = "",
    next: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    session.check_login_csrf(request, settings, csrf_token)
    try:
        result = await run_in_threadpool(
            auth.login,
            settings=settings,
            username=username,
            password=password,
            totp=totp or None,
        )
    except LoginFailed:
        return render(
            request,
            "login.html",
            status=401,
            next=safe_next(next),
            error="failed",
            login_csrf=csrf_token,
            username=username,
        )
    target = f"{PREFIX}/password" if result.must_change_password else safe_next(next)
    response = redirect(target)
    session.start(response, settings=settings, token=result.token)
    return response


@router.post("/logout")
async def logout(settings: SettingsDep, browser: SessionDep, csrf_token: Csrf = "") -> Response:
    session.check_csrf(browser, csrf_token)
    await run_in_threadpool(auth.logout, settings=settings, steward=browser.steward)
    response = redirect(f"{PREFIX}/login")
    session.end(response)
    return response


@router.get("/password", response_class=HTMLResponse)
async def password_form(request: Request, browser: SessionDep) -> Response:
    return render(request, "password.html", session=browser, error=None)


@router.post("/password", response_class=HTMLResponse)
async def change_password(
    *,
    request: Request,
    settings: SettingsDep,
    browser: SessionDep,
    current_password: Annotated[str, Form(max_length=1024)],
    new_password: Annotated[str, Form(max_length=1024)],
    csrf_token: Csrf = "",
) -> Response:
    session.check_csrf(browser, csrf_token)
    if browser.steward.account_id is None:
        raise FormInvalid("log in with a steward account to change its password")
    try:
        await run_in_threadpool(
            auth.change_password,
            settings=settings,
            account_id=browser.steward.account_id,
            current_password=current_password,
            new_password=new_password,
            keep_token_id=browser.steward.token_id,
        )
    except (LoginFailed, PasswordRejected) as exc:
        return render(request, "password.html", status=422, session=browser, error=exc.message)
    return redirect(f"{PREFIX}/?changed=password")


@router.get("/language")
async def choose_language(
    settings: SettingsDep,
    lang: Annotated[str, Query(max_length=5)] = "en",
    next: Annotated[str, Query(max_length=500)] = "",
) -> RedirectResponse:
    """Remember the interface language in a cookie (not a server state: a GET is fine)."""
    if lang not in LANGUAGES:
        raise FormInvalid("unknown language")
    response = redirect(safe_next(next))
    response.set_cookie(
        LANGUAGE_COOKIE,
        lang,
        max_age=365 * 86400,
        path=PREFIX,
        samesite="lax",
        secure=settings.web_cookie_secure,
    )
    return response


@router.get("/fonts/{name}")
async def font(request: Request, name: Annotated[str, PathParam(max_length=40)]) -> Response:
    """A script font for the stylesheet, gzipped when the browser takes it; cached for long."""
    headers = {"Cache-Control": "public, max-age=31536000, immutable", "Vary": "Accept-Encoding"}
    if "gzip" in request.headers.get("accept-encoding", ""):
        body = await run_in_threadpool(fonts.gzipped, name)
        return Response(
            body, media_type="font/ttf", headers={**headers, "Content-Encoding": "gzip"}
        )
    return FileResponse(fonts.font_path(name), media_type="font/ttf", headers=headers)


# --- pages ---------------------------------------------------------------------------------------


@router.get("", include_in_schema=False)
async def root() -> RedirectResponse:
    return redirect(f"{PREFIX}/")


@router.get("/", response_class=HTMLResponse)
async def dashboard(request: Request, settings: SettingsDep, browser: SessionDep) -> Response:
    view = await run_in_threadpool(service.dashboard, settings=settings)
    return render(request, "dashboard.html", session=browser, view=view, s=service)


@router.get("/datasets", response_class=HTMLResponse)
async def datasets(request: Request, settings: SettingsDep, browser: SessionDep) -> Response:
    return await _datasets_page(request, settings, browser)


async def _datasets_page(
    request: Request,
    settings: NodeSettings,
    browser: BrowserSession,
    *,
    refused: forms.FieldError | None = None,
    form_id: str = "",
    typed: dict[str, str] | None = None,
    report: ValidationReport | None = None,
) -> Response:
    """The datasets with their import and draft forms; after a refused upload, the form it
    came from again as typed, its error beside the field and in a summary."""
    view = await run_in_threadpool(service.dataset_list, settings=settings)
    held = await run_in_threadpool(service.held_modules, settings=settings)
    return render(
        request,
        "datasets.html",
        status=refused.status if refused else 200,
        session=browser,
        datasets=view,
        modules=held,
        refused=refused,
        form_id=form_id,
        typed=typed or {},
        report=report,
    )


_UPLOAD_REFUSALS = (DatasetError, FormInvalid, HarmonisationError)


async def _staged_form(
    request: Request, settings: NodeSettings, browser: BrowserSession, form: UploadForm
) -> uploads.Staged:
    """Stream an upload form's files into a new staging folder (CSRF checked first); `form`
    gets the fields as they arrive."""
    token, folder = await run_in_threadpool(uploads.new_folder, settings.home)
    try:
        await multipart.receive(
            request,
            folder=folder,
            files={
                "upload": uploads.EXPORT,
                "codebook": uploads.CODEBOOK,
                "partner": uploads.PARTNER,
            },
            limit=settings.import_max_bytes,
            before_file=lambda fields: session.check_csrf(browser, fields.get("csrf_token", "")),
            form=form,
        )
        session.check_csrf(browser, form.get("csrf_token"))
        # This route parses its own body, so the edge's text rule is applied here.
        refuse_text(edge.forbidden_in_form(form.fields.items()))
        if "upload" not in form.files:
            raise forms.required("upload", forms.CHOOSE_FILE)
        forms.check_export_name(form.files["upload"].name)
        return await run_in_threadpool(uploads.find, settings.home, token)
    except BaseException:
        uploads.discard(settings.home, token)
        raise


def _typed(form: UploadForm) -> dict[str, str]:
    """What the steward typed, to fill the form again (never the CSRF token or a file)."""
    return {k: v for k, v in form.fields.items() if k != "csrf_token"}


@upload_routes.post("/datasets/import", response_class=HTMLResponse)
async def import_dataset(request: Request, settings: SettingsDep, browser: SessionDep) -> Response:
    """Check an uploaded export against the dataset's newest contract, or import it."""
    form = UploadForm()

    async def refuse(exc: NodeError) -> Response:
        """The datasets page again, with what was typed and why the upload was refused."""
        return await _datasets_page(
            request,
            settings,
            browser,
            refused=forms.upload_error(exc, has_codebook=True),
            form_id="import",
            typed=_typed(form),
            report=getattr(exc, "report", None),
        )

    try:
        staged = await _staged_form(request, settings, browser, form)
    except _UPLOAD_REFUSALS as exc:
        return await refuse(exc)
    try:
        mode = form.get("mode", "check")
        if mode not in ("check", "import"):
            raise FormInvalid("unknown action")
        outcome = await run_in_threadpool(
            service.import_staged,
            settings=settings,
            staged=staged,
            dataset=form.get("dataset"),
            options=service.upload_options(form.fields),
            check_only=mode == "check",
            by=f"steward:{browser.steward.name}",
        )
    except _UPLOAD_REFUSALS as exc:
        return await refuse(exc)
    finally:
        uploads.discard(settings.home, staged.token)
    status = 200 if outcome.report.ok else 422
    name = form.get("dataset")
    return render(
        request, "imported.html", status=status, session=browser, outcome=outcome, name=name
    )


@upload_routes.post("/datasets/draft", response_class=HTMLResponse)
async def draft_dataset(request: Request, settings: SettingsDep, browser: SessionDep) -> Response:
    """Propose a contract from an uploaded export (and its XLSForm), to review column by column."""
    form = UploadForm()
    staged: uploads.Staged | None = None
    try:
        staged = await _staged_form(request, settings, browser, form)
        view = await run_in_threadpool(
            service.draft_staged,
            settings=settings,
            staged=staged,
            dataset=form.get("dataset"),
            options=service.upload_options(form.fields),
            fields={"title": form.get("title")},
        )
    except _UPLOAD_REFUSALS as exc:
        if staged is not None:
            uploads.discard(settings.home, staged.token)
        refused = forms.upload_error(exc, has_codebook="partner" not in form.files)
        return await _datasets_page(
            request,
            settings,
            browser,
            refused=refused,
            form_id="draft",
            typed=_typed(form),
            report=getattr(exc, "report", None),
        )
    except BaseException:
        if staged is not None:
            uploads.discard(settings.home, staged.token)
        raise
    return render(request, "draft.html", session=browser, view=view)


@router.post("/datasets/draft/review", response_class=HTMLResponse)
async def review_draft(request: Request, settings: SettingsDep, browser: SessionDep) -> Response:
    """Draft again with the steward's choices; publish it (and import the file) when asked.
    Fields that cannot be read come back beside their error, as typed, and nothing is
    published."""
    received = await request.form()
    fields = {k: v for k, v in received.items() if isinstance(v, str)}
    session.check_csrf(browser, fields.get("csrf_token", ""))
    refuse_text(edge.forbidden_in_form(fields.items()))
    token = fields.get("token", "")
    action = fields.get("action", "review")
    if action == "discard":
        uploads.discard(settings.home, token)
        return redirect(f"{PREFIX}/datasets")
    shown = {k[len("shown__") :] for k in fields if k.startswith("shown__")}
    if action.startswith("show:"):
        shown.add(action[len("show:") :])
    staged = await run_in_threadpool(uploads.find, settings.home, token)
    view = await run_in_threadpool(
        service.draft_staged,
        settings=settings,
        staged=staged,
        dataset=fields.get("dataset", ""),
        options=service.upload_options(fields),
        fields=fields,
        shown=frozenset(shown),
    )
    if view.errors:
        return render(request, "draft.html", status=422, session=browser, view=view)
    if action not in ("publish", "publish_import"):
        return render(request, "draft.html", session=browser, view=view)
    try:
        outcome = await run_in_threadpool(
            service.publish_draft,
            settings=settings,
            view=view,
            import_file=action == "publish_import",
            by=f"steward:{browser.steward.name}",
        )
    except (ContractConflict, ContractInvalid) as exc:
        refused = replace(view, errors=(forms.upload_error(exc),), typed_version=str(view.version))
        return render(
            request, "draft.html", status=refused.errors[0].status, session=browser, view=refused
        )
    if outcome is None:
        return redirect(f"{PREFIX}/datasets/{view.dataset}/contracts/{view.version}")
    status = 200 if outcome.report.ok else 422
    return render(
        request,
        "imported.html",
        status=status,
        session=browser,
        outcome=outcome,
        name=view.dataset,
        view=view,
    )


@router.get("/datasets/{name}/versions/{version}", response_class=HTMLResponse)
async def dataset_version(
    request: Request,
    settings: SettingsDep,
    browser: SessionDep,
    name: DatasetName,
    version: Version,
) -> Response:
    info, report = await run_in_threadpool(
        service.version_detail, settings=settings, name=name, version=version
    )
    return render(request, "version.html", session=browser, info=info, report=report)


@router.get("/datasets/{name}/contracts/{version}", response_class=HTMLResponse)
async def dataset_contract(
    request: Request,
    settings: SettingsDep,
    browser: SessionDep,
    name: DatasetName,
    version: Version,
) -> Response:
    contract = await run_in_threadpool(
        service.contract, settings=settings, name=name, version=version
    )
    return render(request, "contract.html", session=browser, contract=contract)


@router.get("/agreements", response_class=HTMLResponse)
async def agreements(request: Request, settings: SettingsDep, browser: SessionDep) -> Response:
    view = await run_in_threadpool(service.agreement_list, settings=settings)
    return render(request, "agreements.html", session=browser, agreements=view, s=service)


@router.post("/agreements/review", response_class=HTMLResponse)
async def review(
    *,
    request: Request,
    settings: SettingsDep,
    browser: SessionDep,
    csrf_token: Csrf = "",
    document: Annotated[str, Form(max_length=service.MAX_AGREEMENT_BYTES)] = "",
    upload: Annotated[UploadFile | None, File()] = None,
    agreement_id: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    """Check a hub-signed version (pasted, uploaded or fetched) and show its terms to sign."""
    session.check_csrf(browser, csrf_token)
    if agreement_id.strip() and not document.strip() and not (upload and upload.filename):
        view = await run_in_threadpool(
            service.fetch_for_review, settings=settings, agreement_id=agreement_id.strip()
        )
    else:
        if upload is not None and upload.filename:
            raw = await upload.read(service.MAX_AGREEMENT_BYTES + 1)
            document = raw.decode("utf-8", errors="replace")
        agreement = service.parse_agreement(document)
        view = await run_in_threadpool(service.review, settings=settings, agreement=agreement)
    return render(request, "review.html", session=browser, review=view, s=service)


@router.post("/agreements/sign")
async def sign(
    settings: SettingsDep,
    browser: SessionDep,
    csrf_token: Csrf = "",
    document: Annotated[str, Form(max_length=service.MAX_AGREEMENT_BYTES)] = "",
    confirm: Annotated[str, Form(max_length=10)] = "",
) -> Response:
    session.check_csrf(browser, csrf_token)
    if confirm != "yes":
        raise FormInvalid("tick the box to confirm you have read the terms")
    agreement = service.parse_agreement(document)
    agreement_id, done = await run_in_threadpool(
        service.sign, settings=settings, agreement=agreement
    )
    return redirect(f"{PREFIX}/agreements/{agreement_id}?done={done}")


@router.get("/agreements/{agreement_id}", response_class=HTMLResponse)
async def agreement(
    request: Request,
    settings: SettingsDep,
    browser: SessionDep,
    agreement_id: AgreementId,
    done: Annotated[str, Query(max_length=20)] = "",
) -> Response:
    view = await run_in_threadpool(
        service.agreement_detail, settings=settings, agreement_id=agreement_id
    )
    return render(request, "agreement.html", session=browser, a=view, s=service, done=done)


@router.get("/agreements/{agreement_id}/{action}", response_class=HTMLResponse)
async def confirm_status(
    request: Request,
    settings: SettingsDep,
    browser: SessionDep,
    agreement_id: AgreementId,
    action: Annotated[str, PathParam(pattern="^(suspend|resume|revoke)$")],
) -> Response:
    """Ask before a status change, and say what it will do."""
    view = await run_in_threadpool(
        service.agreement_detail, settings=settings, agreement_id=agreement_id
    )
    return render(request, "confirm.html", session=browser, a=view, action=action, s=service)


@router.post("/agreements/{agreement_id}/{action}")
async def change_status(
    *,
    settings: SettingsDep,
    browser: SessionDep,
    agreement_id: AgreementId,
    action: Annotated[str, PathParam(pattern="^(suspend|resume|revoke)$")],
    csrf_token: Csrf = "",
    reason: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    session.check_csrf(browser, csrf_token)
    outcome = await run_in_threadpool(
        service.change_status,
        settings=settings,
        agreement_id=agreement_id,
        action=action,
        reason=reason,
    )
    return redirect(f"{PREFIX}/agreements/{agreement_id}?done={outcome.status}")


@router.get("/requests", response_class=HTMLResponse)
async def requests(
    *,
    request: Request,
    settings: SettingsDep,
    browser: SessionDep,
    agreement_id: Annotated[str, Query(max_length=100)] = "",
    organisation: Annotated[str, Query(max_length=200)] = "",
    outcome: Annotated[str, Query(pattern="^(|accepted|refused)$")] = "",
) -> Response:
    """Every request the hub sent, accepted or refused: what was asked, by whom, at what cost."""
    view = await run_in_threadpool(
        service.decisions,
        settings=settings,
        limit=100,
        agreement_id=agreement_id or None,
        organisation=organisation or None,
        outcome=outcome or None,
    )
    template = "_decisions.html" if request.headers.get("hx-request") else "requests.html"
    known = await run_in_threadpool(service.agreement_list, settings=settings)
    asking = await run_in_threadpool(service.organisations, settings=settings)
    return render(
        request,
        template,
        session=browser,
        decisions=view,
        agreement_id=agreement_id,
        organisation=organisation,
        outcome=outcome,
        agreements=known,
        organisations=asking,
        s=service,
    )
