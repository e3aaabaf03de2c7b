"""Node configuration, read only through pydantic-settings (environment prefix NODE_)."""

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from runtime.db import database_url
from runtime.settings import SideSettings


class NodeSettings(SideSettings):
    model_config = SettingsConfigDict(env_prefix="NODE_", frozen=True)
    toml_name = "node.toml"

    # The node's folder: identity, keys, datasets and (by default) its SQLite database.
    home: Path
    # SQLAlchemy URL, e.g. postgresql://sauti@db/node; default: SQLite file in the home.
    database_url: SecretStr | None = None
    # Merged into database_url, so the URL can be logged while the password stays a secret.
    database_password: SecretStr | None = None
    # A signed hub request older than this is refused, whatever its expiry says.
    request_max_age_seconds: int = 86400
    # Tolerated clock difference with the hub when checking issued-at and expiry times.
    clock_skew_seconds: int = 300
    # Largest file `sauti node import` or the steward API accepts (bytes); larger is refused.
    import_max_bytes: int = 1 << 30
    # Any other request body larger than this is refused (413 too_large) before it is read:
    # hub queries, logins, steward calls and forms. Data uploads have import_max_bytes.
    body_max_bytes: int = Field(default=2_000_000, ge=1024)
    # Sign and publish the audit chain head after this many new entries (0: only on command).
    audit_checkpoint_every: int = 100
    # While a steward's signature or status notice waits for the hub, the running node sends
    # it again this often (seconds; 0: only on signing, on `sauti node agreements report`,
    # and in pull mode on every poll).
    outbox_retry_seconds: float = Field(default=60, ge=0)
    # Bearer token for GET /metrics (Prometheus); unset: no /metrics route at all.
    metrics_token: SecretStr | None = None
    # `sauti node pull` opens no API, so it serves /metrics (no token) on this port if set;
    # bind it to loopback or a monitoring network only.
    metrics_port: int | None = None
    # Address that port listens on (0.0.0.0 in a container, behind its network).
    metrics_host: str = "127.0.0.1"
    # Steward accounts (node/auth): shortest password accepted (the hub's rules).
    password_min_length: int = 12
    # Failed steward logins in a row that lock the account (`sauti node steward unlock`).
    login_max_failures: int = 5
    # How long a locked steward account stays locked.
    login_lock_minutes: float = 15
    # A password login gives a bearer session token valid this long.
    steward_session_hours: float = 8
    # Mark the steward pages' cookies Secure (sent over HTTPS only): set it behind TLS.
    web_cookie_secure: bool = False

    @property
    def db_url(self) -> str:
        """The database URL with its password: for the engine only, never for a log."""
        return database_url(
            url=self.database_url,
            password=self.database_password,
            default=f"sqlite:///{self.home}/node.sqlite",
        )
