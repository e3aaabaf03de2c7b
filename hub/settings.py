"""Hub configuration, read only through pydantic-settings (environment prefix HUB_)."""

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr
from pydantic_settings import SettingsConfigDict

from runtime.db import database_url
from runtime.settings import SideSettings

# The embedded database's file in the home (`sauti hub init` creates it after hub.json).
DATABASE_FILE = "hub.sqlite"
# Default of checkpoint_overdue_entries, and of `sauti audit reconcile --overdue-entries`.
CHECKPOINT_OVERDUE_ENTRIES = 200


class OidcProviderSettings(BaseModel):
    """One OpenID Connect identity provider and how its claims map to Sauti accounts.

    Set as JSON in `HUB_OIDC_PROVIDERS`, e.g. `[{"name": "kenya-gov", "issuer": "https://...",
    "client_id": "sauti", "client_secret": "...", "organisation": "knbs",
    "roles_claim": "groups", "role_map": {"sauti-analysts": ["analyst"]}}]`.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    title: str = ""
    # Discovery reads {issuer}/.well-known/openid-configuration; the ID token's `iss` must match.
    issuer: str
    client_id: str
    client_secret: SecretStr | None = None
    scopes: tuple[str, ...] = ("openid", "profile", "email")
    # The organisation every user of this IdP belongs to (a government IdP: one ministry) ...
    organisation: str | None = None
    # ... or a claim whose value names it, through organisation_map (claim value -> org slug).
    organisation_claim: str | None = None
    organisation_map: dict[str, str] = {}
    # A claim holding a list of groups (or one string); role_map: group -> roles, each
    # "analyst", "auditor", ... or "steward:<node_id>".
    roles_claim: str = "groups"
    role_map: dict[str, tuple[str, ...]] = {}
    default_roles: tuple[str, ...] = ()
    username_claim: str = "preferred_username"
    clock_skew_seconds: int = 60


class HubSettings(SideSettings):
    model_config = SettingsConfigDict(env_prefix="HUB_", extra="ignore")
    toml_name = "hub.toml"

    # The hub's folder: identity, signing key and (by default) its SQLite database.
    home: Path
    # SQLAlchemy URL, e.g. postgresql://sauti@db/hub; default: SQLite file in the home.
    database_url: SecretStr | None = None
    # Merged into database_url, so the URL can be logged while the password stays a secret.
    database_password: SecretStr | None = None
    # Default lifetime of a signed request to a node (analysts may ask for longer).
    request_ttl_seconds: int = 300
    # Timeout of one call to a push node, and how many times a failed call is retried.
    node_timeout_seconds: float = 30
    node_retries: int = 2
    # First retry waits about this long, doubling each time (plus jitter).
    node_backoff_seconds: float = 0.2
    # At most this many push deliveries in flight per hub process or worker (a query to
    # 1,000 nodes sends in waves of this size), lowered to half of what the open-file limit
    # (ulimit -n) leaves after 128 (the other half for kept-alive connections). More pays only
    # where nodes' latency, not the hub's CPU, bounds a query; each holds up to
    # node_response_max_bytes.
    node_concurrency: int = Field(default=256, ge=1)
    # A node's answer larger than this many bytes is refused unread (`response_too_large`).
    node_response_max_bytes: int = Field(default=1_100_000, ge=1024)
    # Delivery to nodes (hub/queries). Without a broker, deliveries run in the hub's own process
    # (the embedded default, used by `sauti demo`); with one, `sauti hub worker` runs them.
    celery_broker_url: str | None = None
    celery_result_backend: str | None = None
    celery_queue: str = "sauti-hub"
    # Prefix of every Redis key Celery writes, so several hubs (or test runs) share a Redis.
    celery_key_prefix: str = ""
    # Scale-out: uvicorn processes `sauti hub serve` runs on its one port (each with its own
    # database pool and sweeper; claims and the audit head are row-locked, so they share one
    # PostgreSQL safely). More than 1 needs PostgreSQL: SQLite has one writer.
    api_processes: int = Field(default=1, ge=1, le=64)
    # Celery worker processes `sauti hub worker` starts, the pool each runs (threads, or solo:
    # polars under prefork can deadlock) and its concurrency (deliveries in flight at once).
    worker_processes: int = Field(default=1, ge=1, le=64)
    worker_pool: Literal["threads", "solo"] = "threads"
    worker_concurrency: int = Field(default=8, ge=1, le=256)
    # A push delivery still unanswered this long after it was sent is sent again (a broker
    # that lost its messages, a hub restart); the hub checks every half of it. Keep it above
    # node_timeout_seconds x (node_retries + 1), or slow deliveries are sent twice (harmless:
    # the node answers a known query id from its store, charged once).
    redispatch_seconds: float = 120
    # Longest request TTL an analyst may ask for (a pull node may be offline for days).
    max_request_ttl_seconds: int = 14 * 86400
    # How long `POST /v1/queries` waits for completion before answering 202 with progress.
    query_wait_seconds: float = 60
    # How often a waiting request re-reads progress written by another process.
    progress_poll_seconds: float = 0.1
    # How often instead while that progress is signalled (PostgreSQL: each API process listens
    # for notifications the recording transactions send; this re-read is the fallback).
    progress_fallback_seconds: float = 1.0
    enrollment_token_ttl_hours: float = 72
    key_overlap_seconds: int = 7 * 86400
    node_clock_skew_seconds: int = 300
    # Any request body larger than this is refused (413 too_large) before it is read: logins,
    # API calls, forms and node-facing messages alike (it was HUB_NODE_BODY_MAX_BYTES).
    body_max_bytes: int = Field(default=2_000_000, ge=1024)
    pull_max_wait_seconds: float = 30
    # A collected pull task is handed out again after this long without an answer.
    pull_lease_seconds: float = 60
    # Bearer token for GET /metrics (Prometheus); unset: no /metrics route at all.
    metrics_token: SecretStr | None = None
    # A node is flagged as overdue with its audit checkpoints (auditor page and API,
    # reconciliation) once more entries of its log than this have no signed checkpoint at
    # the hub; live, each answered task counts as two entries, the fewest a node writes for
    # one. Keep it above twice the nodes' NODE_AUDIT_CHECKPOINT_EVERY. 0: never flag.
    checkpoint_overdue_entries: int = CHECKPOINT_OVERDUE_ENTRIES
    # Identity and access (hub/auth): shortest password accepted for a local account.
    password_min_length: int = 12
    # Failed logins in a row that lock an account (an admin can unlock it earlier).
    login_max_failures: int = 5
    # How long a locked account stays locked.
    login_lock_minutes: float = 15
    # API tokens expire after this many days unless a shorter life is asked for.
    token_default_days: float = 90
    # No API token lives longer than this many days.
    token_max_days: float = 366
    # Browser sessions end this long after login, whatever the activity.
    session_hours: float = 12
    # Browser sessions end after this long without a request.
    session_idle_minutes: float = 60
    # Off only for plain-HTTP development: browsers drop Secure cookies sent over http.
    session_cookie_secure: bool = True
    # The hub's URL as browsers see it (OIDC redirect URIs); else taken from each request.
    public_url: str | None = None
    # OpenID Connect identity providers (JSON list; see OidcProviderSettings in hub/settings.py).
    oidc_providers: tuple[OidcProviderSettings, ...] = ()
    # The name authenticator apps show next to a TOTP code.
    totp_issuer: str = "Sauti hub"

    @property
    def celery_enabled(self) -> bool:
        return self.celery_broker_url is not None

    @property
    def effective_database_url(self) -> str:
        """The database URL with its password: for the engine only, never for a log."""
        return database_url(
            url=self.database_url,
            password=self.database_password,
            default=f"sqlite:///{self.home}/{DATABASE_FILE}",
        )
