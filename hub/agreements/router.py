"""Routes of agreements: create (hub signs), add a node's signature, read."""

from fastapi import APIRouter

from contracts.v1 import AgreementSignature, AgreementTerms
from hub.agreements import service
from hub.agreements.schemas import AgreementRead
from hub.deps import CurrentUser, Secretariat, SessionDep, StateDep

router = APIRouter(prefix="/v1/agreements", tags=["agreements"])


@router.post("", status_code=201)
def create_agreement(
    terms: AgreementTerms, user: Secretariat, session: SessionDep, state: StateDep
) -> AgreementRead:
    return service.create_agreement(
        session=session,
        terms=terms,
        identity=state.identity,
        key=state.key,
        actor=f"user:{user.name}",
    )


@router.post("/{agreement_id}/signatures", status_code=201)
def add_signature(
    agreement_id: str, signature: AgreementSignature, user: Secretariat, session: SessionDep
) -> AgreementRead:
    return service.add_signature(
        session=session, signature=signature, actor=f"user:{user.name}", agreement_id=agreement_id
    )


@router.get("")
def list_agreements(_user: CurrentUser, session: SessionDep) -> list[AgreementRead]:
    return service.list_agreements(session=session)


@router.get("/{agreement_id}")
def get_agreement(agreement_id: str, _user: CurrentUser, session: SessionDep) -> AgreementRead:
    return service.get_agreement(session=session, agreement_id=agreement_id)
