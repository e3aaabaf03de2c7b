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

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home}/hub.sqlite"
