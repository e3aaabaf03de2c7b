"""Who is calling (the principal behind a token or a session) and the auth API's in/out types."""

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Role = Literal["admin", "secretariat", "analyst", "auditor", "steward"]
ROLES: tuple[Role, ...] = ("admin", "secretariat", "analyst", "auditor", "steward")
# When one person holds several roles, `User.role` is the strongest, so checks written for
# one role per caller ("sees everything" for admin/secretariat/auditor) stay right.
ROLE_PRECEDENCE: tuple[Role, ...] = ("admin", "secretariat", "auditor", "steward", "analyst")
OrgKind = Literal["cso", "nso", "secretariat", "other"]
ORG_KINDS: tuple[OrgKind, ...] = ("cso", "nso", "secretariat", "other")
Via = Literal["token", "session"]
UserKind = Literal["person", "service"]


class User(BaseModel):
    """The authenticated caller. `role` is what a token acts as (or a session's strongest)."""

    model_config = ConfigDict(frozen=True)

    token_id: int | None = None
    user_id: int | None = None
    name: str
    organisation: str
    role: Role
    roles: tuple[Role, ...] = ()
    # Nodes this caller stewards (steward grants are scoped to one node each).
    node_ids: tuple[str, ...] = ()
    via: Via = "token"
    session_id: int | None = None

    def has(self, role: str) -> bool:
        return role == self.role or role in self.roles


class RoleScope(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    role: Role
    # Organisation roles act for the user's organisation; a steward names the node.
    node_id: str | None = Field(default=None, max_length=200)


# --- organisations ---------------------------------------------------------------------------


class OrganisationCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    slug: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    name: str = Field(min_length=1, max_length=300)
    kind: OrgKind
    country: str | None = Field(default=None, pattern=r"^\d{3}$")


class OrganisationRead(BaseModel):
    slug: str
    name: str
    kind: OrgKind
    country: str | None
    created_at: datetime


# --- users -------------------------------------------------------------------------------------


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9._@-]*$")
    display_name: str | None = Field(default=None, max_length=300)
    organisation: str = Field(min_length=1, max_length=200)
    kind: Literal["person", "service"] = "person"
    roles: tuple[RoleScope, ...] = ()


class GrantRead(BaseModel):
    role: Role
    scope: str
    source: str
    granted_at: datetime


class UserRead(BaseModel):
    user_id: int
    username: str
    display_name: str
    organisation: str
    kind: UserKind
    roles: tuple[GrantRead, ...]
    has_password: bool
    must_change_password: bool
    totp_enabled: bool
    locked_until: datetime | None
    disabled: bool
    oidc_provider: str | None
    created_at: datetime


class UserCreated(BaseModel):
    """A new account, with its one-time initial password when the hub generated it."""

    user: UserRead
    initial_password: str | None = None


class PasswordReset(BaseModel):
    """A one-time password set by an admin: shown once, to be changed at the next login."""

    username: str
    temporary_password: str


# --- tokens ------------------------------------------------------------------------------------


class TokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    role: Role
    node_id: str | None = Field(default=None, max_length=200)
    # For another user than the caller (admins only); the caller's own otherwise.
    username: str | None = Field(default=None, max_length=200)
    expires_in_days: float | None = Field(default=None, gt=0)


class TokenRead(BaseModel):
    token_id: int
    name: str
    username: str | None
    organisation: str
    role: Role
    scope: str | None
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None


class TokenCreated(BaseModel):
    """The token's secret appears here once and is never retrievable again."""

    token: str
    info: TokenRead


# --- login, sessions, TOTP ---------------------------------------------------------------------


class SessionInfo(BaseModel):
    """The signed-in user, and the CSRF token state-changing requests must echo."""

    user: str
    organisation: str
    roles: tuple[Role, ...]
    node_ids: tuple[str, ...]
    csrf_token: str
    expires_at: datetime
    must_change_password: bool
    method: str


class TotpConfirm(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(min_length=6, max_length=6)


class OidcProviderRead(BaseModel):
    name: str
    title: str
    login_url: str
