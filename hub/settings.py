"""Hub configuration, read only through pydantic-settings (environment prefix HUB_)."""

from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict


class HubSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HUB_", extra="ignore")

    home: Path
    database_url: str | None = None
    request_ttl_seconds: int = 300
    node_timeout_seconds: float = 30
    node_retries: int = 2
    # First retry waits about this long, doubling each time (plus jitter).
    node_backoff_seconds: float = 0.2
    # Federation (hub/federation). Without a broker, deliveries run in the hub's own process
    # (the embedded default, used by `sauti demo`); with one, `sauti hub worker` runs them.
    celery_broker_url: str | None = None
    celery_result_backend: str | None = None
    celery_queue: str = "sauti-hub"
    # Prefix of every Redis key Celery writes, so several hubs (or test runs) share a Redis.
    celery_key_prefix: str = ""
    # Longest request TTL an analyst may ask for (a pull node may be offline for days).
    max_request_ttl_seconds: int = 14 * 86400
    # How long `POST /v1/queries` waits for completion before answering 202 with progress.
    query_wait_seconds: float = 60
    # How often a waiting request re-reads progress written by another process.
    progress_poll_seconds: float = 0.1
    enrollment_token_ttl_hours: float = 72
    key_overlap_seconds: int = 7 * 86400
    node_clock_skew_seconds: int = 300
    # Node-facing bodies (polls, releases, refusals, enrollment) larger than this are refused.
    node_body_max_bytes: int = 2_000_000
    pull_max_wait_seconds: float = 30
    # A collected pull task is handed out again after this long without an answer.
    pull_lease_seconds: float = 60

    @property
    def celery_enabled(self) -> bool:
        return self.celery_broker_url is not None

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home}/hub.sqlite"
