"""Steward login, logout, identity and password change on the node (no hub involved)."""

from fastapi import APIRouter, Response
from starlette.concurrency import run_in_threadpool

from node.api.deps import SettingsDep, StewardDep
from node.auth import service
from node.auth.exceptions import Unauthenticated
from node.auth.schemas import LoginResult, Steward
from runtime.credentials import LoginRequest, PasswordChange

router = APIRouter(prefix="/v1/steward", tags=["steward"])


@router.post("/login")
async def login(body: LoginRequest, settings: SettingsDep) -> LoginResult:
    """Password (and TOTP code) login: a bearer session token. Failures count to a lockout."""
    return await run_in_threadpool(
        service.login,
        settings=settings,
        username=body.username,
        password=body.password,
        totp=body.totp,
    )


@router.post("/logout", status_code=204)
async def logout(settings: SettingsDep, steward: StewardDep) -> Response:
    """End this session (or revoke this token) at once."""
    await run_in_threadpool(service.logout, settings=settings, steward=steward)
    return Response(status_code=204)


@router.get("/me")
async def me(steward: StewardDep) -> Steward:
    return steward


@router.post("/password", status_code=204)
async def change_password(
    body: PasswordChange, settings: SettingsDep, steward: StewardDep
) -> Response:
    if steward.account_id is None:
        raise Unauthenticated("log in with a steward account to change its password")
    await run_in_threadpool(
        service.change_password,
        settings=settings,
        account_id=steward.account_id,
        current_password=body.current_password,
        new_password=body.new_password,
        keep_token_id=steward.token_id,
    )
    return Response(status_code=204)
