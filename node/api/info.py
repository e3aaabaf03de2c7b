"""Who this node is, and whether it is up: /v1/health, /v1/info and /v1/contracts."""

from fastapi import APIRouter
from sqlalchemy import text

from contracts.v1 import NodeInfo, Signed
from node.api.deps import SettingsDep
from node.datasets import service as datasets
from node.db import transaction
from node.home import load_identity

router = APIRouter(prefix="/v1")


@router.get("/health", tags=["meta"])
def health(settings: SettingsDep) -> dict[str, str]:
    """Liveness for containers and monitors: the home loads and the database answers."""
    identity = load_identity(settings.home)
    with transaction(settings.db_url) as session:
        session.execute(text("SELECT 1"))
    return {"status": "ok", "node_id": identity.node_id}


@router.get("/info", response_model=NodeInfo)
def info(settings: SettingsDep) -> NodeInfo:
    identity = load_identity(settings.home)
    return NodeInfo(
        node_id=identity.node_id,
        name=identity.name,
        country=identity.country,
        public_jwk=identity.public_jwk,
        kid=identity.kid,
        datasets=tuple(datasets.list_datasets(home=settings.home)),
    )


@router.get("/contracts", response_model=Signed)
def contracts(settings: SettingsDep) -> Signed:
    """Every dataset contract version this node serves, signed with the node key: the hub
    stores them per node and version and checks queries against them before sending."""
    return Signed(jws=datasets.signed_contracts(home=settings.home))
