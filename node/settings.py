"""Node configuration, read only through pydantic-settings (environment prefix NODE_)."""

from pathlib import Path

from pydantic import model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class NodeSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="NODE_", frozen=True)

    home: Path
    database_url: str | None = None
    request_max_age_seconds: int = 86400
    clock_skew_seconds: int = 300
    # Largest file `sauti node import` or the steward API accepts (bytes); larger is refused.
    import_max_bytes: int = 1 << 30
    # Sign and publish the audit chain head after this many new entries (0: only on command).
    audit_checkpoint_every: int = 100

    @model_validator(mode="after")
    def _default_database(self) -> "NodeSettings":
        if self.database_url is None:
            # frozen model: set through object.__setattr__ once, at construction.
            object.__setattr__(self, "database_url", f"sqlite:///{self.home}/node.sqlite")
        return self

    @property
    def db_url(self) -> str:
        assert self.database_url is not None
        return self.database_url
