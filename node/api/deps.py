"""Dependencies shared by the node's routes: settings and the authenticated steward."""

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from node.auth import service as auth
from node.auth.schemas import Steward
from node.settings import NodeSettings

_bearer = HTTPBearer(auto_error=False)


def _settings(request: Request) -> NodeSettings:
    settings: NodeSettings = request.app.state.settings
    return settings


SettingsDep = Annotated[NodeSettings, Depends(_settings)]


def _steward(
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Steward:
    token = credentials.credentials if credentials is not None else None
    return auth.authenticate(database_url=settings.db_url, token=token)


StewardDep = Annotated[Steward, Depends(_steward)]
