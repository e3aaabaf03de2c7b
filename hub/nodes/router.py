"""Routes of the node registry: registration, enrollment tokens, enrollment, key rotation.

The node-facing routes (enroll, keys) carry no API token: each body is signed by the node's
key (or, for enrollment, comes with a one-time token); `hub.nodes.messages` reads them.
The pull routes a node polls are the query routes' (`hub.queries.router.pull_router`).
"""

from fastapi import APIRouter, Request, Response

from contracts.v1 import EnrollmentSubmission, KeyRotationSubmission, Signed
from hub.deps import AdminOrSecretariat, CurrentUser, SessionDep, StateDep
from hub.home import rotation_headers
from hub.nodes import contracts, messages, service
from hub.nodes.schemas import (
    ContractsStored,
    EnrollmentTokenCreate,
    EnrollmentTokenIssued,
    EnrollmentTokenRead,
    NodeContractRead,
    NodeCreate,
    NodeKeyRead,
    NodeRead,
)

router = APIRouter(tags=["federation"])


# --- registry (API tokens) ----------------------------------------------------------------


@router.post("/v1/nodes", status_code=201)
def register_node(body: NodeCreate, user: AdminOrSecretariat, session: SessionDep) -> NodeRead:
    return service.register_node(session=session, actor=f"user:{user.name}", **body.model_dump())


@router.get("/v1/nodes")
def list_nodes(_user: CurrentUser, session: SessionDep) -> list[NodeRead]:
    return service.list_nodes(session=session)


@router.get("/v1/nodes/{node_id}/keys")
def key_history(node_id: str, _user: CurrentUser, session: SessionDep) -> list[NodeKeyRead]:
    """Every key the node ever had: what verifies the things it signed in the past."""
    return service.key_history(session=session, node_id=node_id)


@router.delete("/v1/nodes/{node_id}")
def remove_node(node_id: str, user: AdminOrSecretariat, session: SessionDep) -> NodeRead:
    return service.remove_node(session=session, node_id=node_id, actor=f"user:{user.name}")


@router.post("/v1/enrollment-tokens", status_code=201)
def create_enrollment_token(
    body: EnrollmentTokenCreate, user: AdminOrSecretariat, state: StateDep, session: SessionDep
) -> EnrollmentTokenIssued:
    return service.create_enrollment_token(
        session=session, identity=state.identity, actor=f"user:{user.name}", **body.model_dump()
    )


@router.get("/v1/enrollment-tokens")
def list_enrollment_tokens(
    _user: AdminOrSecretariat, session: SessionDep
) -> list[EnrollmentTokenRead]:
    return service.list_enrollment_tokens(session=session)


# --- node-facing (signed by the node) -------------------------------------------------------


@router.post("/v1/enroll", status_code=201)
async def enroll(request: Request, state: StateDep) -> Signed:
    submission = await messages.read_body(request, EnrollmentSubmission)

    def work() -> Signed:
        with state.sessions() as session:
            return service.enroll(
                session=session,
                identity=state.identity,
                key=state.key,
                submission=submission,
                skew_seconds=state.settings.node_clock_skew_seconds,
            )

    return await messages.node_call(request, work)


@router.post("/v1/nodes/contracts")
async def publish_contracts(request: Request, state: StateDep) -> ContractsStored:
    """A node's signed `PublishedContracts` (a pull node posts them; the hub fetches a push
    node's from its `GET /v1/contracts`). Stored per node, dataset and version."""
    body = await messages.read_body(request, Signed)

    def work() -> ContractsStored:
        with state.sessions() as session:
            changed = contracts.store_published(
                session=session,
                token=body.jws,
                skew_seconds=state.settings.node_clock_skew_seconds,
            )
        return ContractsStored(stored=[f"{name}:v{version}" for name, version in changed])

    return await messages.node_call(request, work)


@router.get("/v1/nodes/{node_id}/contracts")
def node_contracts(node_id: str, _user: CurrentUser, session: SessionDep) -> list[NodeContractRead]:
    """The contract versions the hub holds for a node, as the node signed them."""
    return contracts.list_contracts(session=session, node_id=node_id)


@router.post("/v1/nodes/{node_id}/keys")
async def rotate_key(node_id: str, request: Request, response: Response, state: StateDep) -> Signed:
    """The answer is a hub-signed `KeyRotationAccepted`: the node switches keys only on it.

    It carries a current hub key announcement too, so a node that has not yet heard of a
    hub key rotation can verify the answer (signed with the new hub key).
    """
    submission = await messages.read_body(request, KeyRotationSubmission)
    response.headers.update(rotation_headers(state.settings.home))

    def work() -> Signed:
        with state.sessions() as session:
            return service.rotate_key(
                session=session,
                node_id=node_id,
                identity=state.identity,
                key=state.key,
                submission=submission,
                overlap_seconds=state.settings.key_overlap_seconds,
                skew_seconds=state.settings.node_clock_skew_seconds,
            )

    return await messages.node_call(request, work)
