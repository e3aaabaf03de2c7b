"""Routes of shared modules: list and read them, fetch a signed copy, publish and read coverage."""

from fastapi import APIRouter, Query

from contracts.v1 import Module, ModuleCoverageView, Signed
from hub.deps import CurrentUser, SessionDep, StateDep, VersionPath
from hub.harmonisation import service
from hub.harmonisation.schemas import CoverageAccepted, ModuleSummary

router = APIRouter(prefix="/v1/modules", tags=["modules"])


@router.get("")
def list_modules() -> list[ModuleSummary]:
    """Module definitions are public standards: readable without an account."""
    return service.list_modules()


@router.get("/{name}/versions/{version}")
def read_module(name: str, version: VersionPath) -> Module:
    return service.get_module(name=name, version=version)


@router.get("/{name}/versions/{version}/signed")
def signed_module(name: str, version: VersionPath, state: StateDep) -> Signed:
    """The module signed by the hub key, for a node to verify and pin."""
    return service.signed_module(name=name, version=version, key=state.key)


@router.post("/coverage", status_code=201)
def publish_coverage(body: Signed, session: SessionDep, state: StateDep) -> CoverageAccepted:
    """A node's signed coverage report (metadata about its mappings; never data)."""
    return service.accept_coverage(
        session=session,
        identity=state.identity,
        signed=body,
        skew_seconds=state.settings.node_clock_skew_seconds,
    )


@router.get("/{name}/coverage")
def read_coverage(
    name: str,
    user: CurrentUser,
    session: SessionDep,
    version: int | None = Query(default=None, ge=1),
) -> ModuleCoverageView:
    del user  # any signed-in account may read which nodes can answer which variable
    return service.coverage(session=session, name=name, version=version)
