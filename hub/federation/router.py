"""Routes of the node registry."""

from fastapi import APIRouter

from hub.deps import AdminOrSecretariat, CurrentUser, SessionDep
from hub.federation import service
from hub.federation.schemas import NodeCreate, NodeRead

router = APIRouter(prefix="/v1/nodes", tags=["nodes"])


@router.post("", status_code=201)
def register_node(body: NodeCreate, user: AdminOrSecretariat, session: SessionDep) -> NodeRead:
    return service.register_node(session=session, actor=f"user:{user.name}", **body.model_dump())


@router.get("")
def list_nodes(_user: CurrentUser, session: SessionDep) -> list[NodeRead]:
    return service.list_nodes(session=session)
