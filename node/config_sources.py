"""Where node settings come from besides NODE_* variables: `*_FILE` secrets and a TOML file."""

import os
from pathlib import Path
from typing import Any

from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    TomlConfigSettingsSource,
)

PREFIX = "NODE_"
TOML_NAME = "node.toml"


class SecretFilesSource(PydanticBaseSettingsSource):
    """`NODE_<SETTING>_FILE=/run/secrets/x` reads that setting from a file.

    The Docker and Kubernetes way to hand over a secret: the value never sits in the
    environment (visible in /proc and `docker inspect`). A trailing newline is dropped.
    """

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # everything happens in __call__

    def __call__(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name in self.settings_cls.model_fields:
            variable = f"{PREFIX}{name.upper()}_FILE"
            path = os.environ.get(variable)
            if not path:
                continue
            try:
                values[name] = Path(path).read_text(encoding="utf-8").rstrip("\r\n")
            except OSError as exc:
                # Name the variable, never the content.
                raise ValueError(f"{variable}: cannot read the file it names") from exc
        return values


def config_file(init_kwargs: dict[str, Any]) -> Path | None:
    """NODE_CONFIG_FILE if set (it must exist), else `<home>/node.toml` if there is one."""
    explicit = os.environ.get(f"{PREFIX}CONFIG_FILE")
    if explicit:
        if not Path(explicit).is_file():
            raise ValueError(f"{PREFIX}CONFIG_FILE names no readable file")
        return Path(explicit)
    home = init_kwargs.get("home") or os.environ.get(f"{PREFIX}HOME")
    if home is not None and (Path(home) / TOML_NAME).is_file():
        return Path(home) / TOML_NAME
    return None


def sources(
    settings_cls: type[BaseSettings],
    init_settings: PydanticBaseSettingsSource,
    env_settings: PydanticBaseSettingsSource,
) -> tuple[PydanticBaseSettingsSource, ...]:
    """Highest first: arguments, NODE_* variables, NODE_*_FILE secrets, the TOML file."""
    init_kwargs: dict[str, Any] = getattr(init_settings, "init_kwargs", {})
    path = config_file(init_kwargs)
    found: tuple[PydanticBaseSettingsSource, ...] = (
        (TomlConfigSettingsSource(settings_cls, toml_file=path),) if path else ()
    )
    return (init_settings, env_settings, SecretFilesSource(settings_cls), *found)
