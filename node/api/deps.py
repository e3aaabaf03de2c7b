"""Dependencies shared by the node's routes: settings and the authenticated steward."""

from collections.abc import Iterable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from node.auth import service as auth
from node.auth.exceptions import PasswordChangeRequired
from node.auth.schemas import Steward
from node.settings import NodeSettings
from runtime import edge

_bearer = HTTPBearer(auto_error=False)


def refuse_text(locations: Iterable[edge.Location]) -> None:
    """422 `invalid_request` naming each field with a control character (runtime.edge.text)."""
    if errors := edge.validation_errors(locations):
        raise RequestValidationError(errors)


async def check_request_text(request: Request) -> None:
    """Every route's first dependency: control characters in its parameters or parsed body.

    The upload routes stream a data file, which is data, not text, and is not looked at.
    """
    refuse_text(await edge.forbidden_in_request(request))


async def _settings(request: Request) -> NodeSettings:  # async: no thread hop
    settings: NodeSettings = request.app.state.settings
    return settings


SettingsDep = Annotated[NodeSettings, Depends(_settings)]


# What a steward whose password was reset may still do before changing it.
_PASSWORD_CHANGE_PATHS = frozenset({"/v1/steward/password", "/v1/steward/logout"})


def _steward(
    request: Request,
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Steward:
    token = credentials.credentials if credentials is not None else None
    steward = auth.authenticate(database_url=settings.db_url, token=token)
    if steward.must_change_password and request.url.path not in _PASSWORD_CHANGE_PATHS:
        raise PasswordChangeRequired("the password was reset: change it before anything else")
    return steward


StewardDep = Annotated[Steward, Depends(_steward)]
