"""Routes of agreements: draft, propose, sign, suspend/revoke, read, and the printable MoU."""

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from contracts.v1 import AgreementSignature, AgreementTerms, Signed, SignedAgreement
from contracts.v1.base import MAX_VERSION
from hub.agreements import document, service
from hub.agreements.schemas import AgreementRead, StatusChange
from hub.auth.schemas import User
from hub.auth.users import check_node_scope
from hub.deps import CurrentUser, OptionalUser, Secretariat, SessionDep, StateDep, VersionPath
from runtime import edge

router = APIRouter(prefix="/v1/agreements", tags=["agreements"])


def _actor(user: User | None, fallback: str) -> str:
    return f"user:{user.name}" if user is not None else fallback


@router.post("", status_code=201)
def create_agreement(
    terms: AgreementTerms, user: Secretariat, session: SessionDep, state: StateDep
) -> AgreementRead:
    """Draft and propose in one step: the hub signs the version at once."""
    return service.create_agreement(
        session=session,
        terms=terms,
        identity=state.identity,
        key=state.key,
        actor=_actor(user, "system"),
    )


@router.post("/drafts", status_code=201)
def create_draft(
    terms: AgreementTerms, user: Secretariat, session: SessionDep, state: StateDep
) -> AgreementRead:
    """A new agreement, or an amendment (the next version), as an unsigned draft."""
    return service.create_draft(
        session=session, terms=terms, identity=state.identity, actor=_actor(user, "system")
    )


@router.put("/{agreement_id}/versions/{version}")
def update_draft(
    *,
    agreement_id: str,
    version: VersionPath,
    terms: AgreementTerms,
    user: Secretariat,
    session: SessionDep,
    state: StateDep,
) -> AgreementRead:
    return service.update_draft(
        session=session,
        agreement_id=agreement_id,
        version=version,
        terms=terms,
        identity=state.identity,
        actor=_actor(user, "system"),
    )


@router.post("/{agreement_id}/versions/{version}/propose")
def propose(
    agreement_id: str, version: VersionPath, user: Secretariat, session: SessionDep, state: StateDep
) -> AgreementRead:
    """Freeze the draft and sign it for the secretariat; node stewards may now sign."""
    return service.propose(
        session=session,
        agreement_id=agreement_id,
        version=version,
        identity=state.identity,
        key=state.key,
        actor=_actor(user, "system"),
    )


@router.post("/{agreement_id}/signatures", status_code=201)
def add_signature(
    agreement_id: str, signature: AgreementSignature, user: OptionalUser, session: SessionDep
) -> AgreementRead:
    """A node steward's signature; its node key is its authority, whoever delivers it."""
    # A signed-in steward delivering for another node than theirs is an escalation attempt.
    check_node_scope(user, signature.signer)
    return service.add_signature(
        session=session,
        signature=signature,
        actor=_actor(user, f"node:{signature.signer}"),
        agreement_id=agreement_id,
    )


@router.post("/signatures/deliver")
def deliver_signature(body: Signed, session: SessionDep, state: StateDep) -> AgreementRead:
    """A node delivering its steward's signature, signed by the node (fresh, not replayable)."""
    return service.receive_signature(
        session=session,
        token=body.jws,
        identity=state.identity,
        skew_seconds=state.settings.node_clock_skew_seconds,
    )


@router.post("/{agreement_id}/notices")
def receive_notice(agreement_id: str, body: Signed, session: SessionDep) -> AgreementRead:
    """A node's signed report that its steward suspended, resumed or revoked the agreement."""
    return service.receive_notice(session=session, agreement_id=agreement_id, token=body.jws)


@router.post("/fetch")
def fetch_for_node(body: Signed, session: SessionDep, state: StateDep) -> SignedAgreement:
    """For a node's steward: the newest proposed version naming the node that signed the ask."""
    return service.fetch_for_node(
        session=session,
        token=body.jws,
        identity=state.identity,
        skew_seconds=state.settings.node_clock_skew_seconds,
    )


def _set_status(
    *,
    status: str,
    agreement_id: str,
    body: StatusChange | None,
    user: User,
    session: SessionDep,
    state: StateDep,
) -> AgreementRead:
    return service.set_hub_status(
        session=session,
        agreement_id=agreement_id,
        status=status,  # type: ignore[arg-type]
        identity=state.identity,
        actor=_actor(user, "system"),
        reason=body.reason if body is not None else "",
    )


@router.post("/{agreement_id}/suspend")
def suspend(
    agreement_id: str,
    user: Secretariat,
    session: SessionDep,
    state: StateDep,
    body: StatusChange | None = None,
) -> AgreementRead:
    return _set_status(
        status="suspended",
        agreement_id=agreement_id,
        body=body,
        user=user,
        session=session,
        state=state,
    )


@router.post("/{agreement_id}/resume")
def resume(
    agreement_id: str,
    user: Secretariat,
    session: SessionDep,
    state: StateDep,
    body: StatusChange | None = None,
) -> AgreementRead:
    return _set_status(
        status="active",
        agreement_id=agreement_id,
        body=body,
        user=user,
        session=session,
        state=state,
    )


@router.post("/{agreement_id}/revoke")
def revoke(
    agreement_id: str,
    user: Secretariat,
    session: SessionDep,
    state: StateDep,
    body: StatusChange | None = None,
) -> AgreementRead:
    return _set_status(
        status="revoked",
        agreement_id=agreement_id,
        body=body,
        user=user,
        session=session,
        state=state,
    )


@router.get("")
def list_agreements(user: CurrentUser, session: SessionDep) -> list[AgreementRead]:
    return service.list_agreements(session=session, user=user)


@router.get("/{agreement_id}")
def get_agreement(agreement_id: str, user: CurrentUser, session: SessionDep) -> AgreementRead:
    return service.get_agreement(session=session, agreement_id=agreement_id, user=user)


@router.get("/{agreement_id}/versions")
def list_versions(agreement_id: str, user: CurrentUser, session: SessionDep) -> list[AgreementRead]:
    return service.list_versions(session=session, agreement_id=agreement_id, user=user)


@router.get("/{agreement_id}/versions/{version}")
def get_version(
    agreement_id: str, version: VersionPath, user: CurrentUser, session: SessionDep
) -> AgreementRead:
    return service.get_version(
        session=session, agreement_id=agreement_id, version=version, user=user
    )


VersionQuery = Annotated[
    int | None, Query(ge=1, le=MAX_VERSION, description="default: the latest version")
]


def _for_document(
    session: SessionDep, agreement_id: str, version: int | None, user: User
) -> AgreementRead:
    if version is None:
        return service.get_agreement(session=session, agreement_id=agreement_id, user=user)
    return service.get_version(
        session=session, agreement_id=agreement_id, version=version, user=user
    )


@router.get("/{agreement_id}/document.html", response_class=HTMLResponse)
def document_html(
    agreement_id: str, user: CurrentUser, session: SessionDep, version: VersionQuery = None
) -> HTMLResponse:
    """The printable MoU."""
    read = _for_document(session, agreement_id, version, user)
    html = document.render_html(read)
    return HTMLResponse(html, headers={"Content-Security-Policy": edge.document_policy(html)})


@router.get(
    "/{agreement_id}/document.pdf",
    response_class=Response,
    responses=edge.file_answer("application/pdf"),
)
async def document_pdf(
    agreement_id: str, user: CurrentUser, session: SessionDep, version: VersionQuery = None
) -> Response:
    """The printable MoU as PDF, to file."""
    read = _for_document(session, agreement_id, version, user)
    pdf = await run_in_threadpool(document.render_pdf, read)
    filename = f"{read.agreement.terms.agreement_id}-v{read.agreement.terms.version}.pdf"
    return Response(
        pdf,
        media_type="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
