"""FastAPI dependencies declared once: state, sessions, the current user and role checks."""

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Annotated

import httpx
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from joserfc.jwk import OKPKey
from sqlalchemy.orm import Session, sessionmaker

from hub.auth.exceptions import RoleForbidden
from hub.auth.schemas import Role, User
from hub.auth.service import authenticate
from hub.federation.dispatch import Dispatcher
from hub.federation.signals import Signals
from hub.home import HubIdentity
from hub.settings import HubSettings


@dataclass
class HubState:
    """What the app holds for its lifetime; `client` exists only while the lifespan runs."""

    settings: HubSettings
    identity: HubIdentity
    key: OKPKey
    sessions: sessionmaker[Session]
    client: httpx.AsyncClient | None = None
    # Push deliveries and deadlines (in process, or on Celery); set while the lifespan runs.
    dispatcher: Dispatcher | None = None
    signals: Signals = field(default_factory=Signals)


def get_state(request: Request) -> HubState:
    state: HubState = request.app.state.hub
    return state


StateDep = Annotated[HubState, Depends(get_state)]


def get_session(state: StateDep) -> Iterator[Session]:
    with state.sessions() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]

_bearer = HTTPBearer(auto_error=False)


def get_current_user(
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> User:
    user = authenticate(session=session, token=credentials.credentials if credentials else None)
    # Release the read transaction (and SQLite's write lock) before the route's own work.
    session.rollback()
    return user


CurrentUser = Annotated[User, Depends(get_current_user)]


def get_optional_user(
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> User | None:
    """The caller if a token is given (a wrong token is still refused); None if anonymous.

    For routes whose body carries its own authority, such as a node-signed message.
    """
    if credentials is None:
        return None
    return get_current_user(session, credentials)


OptionalUser = Annotated[User | None, Depends(get_optional_user)]


def require(*roles: Role) -> Callable[[User], User]:
    """A dependency that lets only `roles` through (403 `forbidden` otherwise)."""

    def check(user: CurrentUser) -> User:
        if user.role not in roles:
            raise RoleForbidden(roles)
        return user

    return check


AdminOrSecretariat = Annotated[User, Depends(require("admin", "secretariat"))]
Secretariat = Annotated[User, Depends(require("secretariat", "admin"))]
Analyst = Annotated[User, Depends(require("analyst"))]
# Read-only access to the audit log, its checkpoints and exports.
Auditor = Annotated[User, Depends(require("auditor", "admin"))]
