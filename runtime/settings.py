"""Where a side's settings come from besides its environment variables: `*_FILE` secrets
and a TOML file. Each side's settings class derives from `SideSettings`, names its
variables' prefix (`env_prefix`) and its TOML file (`toml_name`), and lists its own fields.
"""

import os
from pathlib import Path
from typing import Any, ClassVar

from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    TomlConfigSettingsSource,
)


class SecretFilesSource(PydanticBaseSettingsSource):
    """`<PREFIX><SETTING>_FILE=/run/secrets/x` reads that setting from a file.

    The Docker and Kubernetes way to hand over a secret: the value never sits in the
    environment (visible in /proc and `docker inspect`). A trailing newline is dropped.
    """

    def __init__(self, settings_cls: type[BaseSettings], *, prefix: str) -> None:
        super().__init__(settings_cls)
        self.prefix = prefix

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # everything happens in __call__

    def __call__(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name in self.settings_cls.model_fields:
            variable = f"{self.prefix}{name.upper()}_FILE"
            path = os.environ.get(variable)
            if not path:
                continue
            try:
                values[name] = Path(path).read_text(encoding="utf-8").rstrip("\r\n")
            except OSError as exc:
                # Name the variable, never the content.
                raise ValueError(f"{variable}: cannot read the file it names") from exc
        return values


def config_file(init_kwargs: dict[str, Any], *, prefix: str, toml_name: str) -> Path | None:
    """<PREFIX>CONFIG_FILE if set (it must exist), else `<home>/<toml_name>` if there is one."""
    explicit = os.environ.get(f"{prefix}CONFIG_FILE")
    if explicit:
        if not Path(explicit).is_file():
            raise ValueError(f"{prefix}CONFIG_FILE names no readable file")
        return Path(explicit)
    home = init_kwargs.get("home") or os.environ.get(f"{prefix}HOME")
    if home is not None and (Path(home) / toml_name).is_file():
        return Path(home) / toml_name
    return None


def sources(
    settings_cls: type[BaseSettings],
    init_settings: PydanticBaseSettingsSource,
    env_settings: PydanticBaseSettingsSource,
    *,
    prefix: str,
    toml_name: str,
) -> tuple[PydanticBaseSettingsSource, ...]:
    """Highest first: arguments, <PREFIX>* variables, <PREFIX>*_FILE secrets, the TOML file."""
    init_kwargs: dict[str, Any] = getattr(init_settings, "init_kwargs", {})
    path = config_file(init_kwargs, prefix=prefix, toml_name=toml_name)
    found: tuple[PydanticBaseSettingsSource, ...] = (
        (TomlConfigSettingsSource(settings_cls, toml_file=path),) if path else ()
    )
    return (init_settings, env_settings, SecretFilesSource(settings_cls, prefix=prefix), *found)


class SideSettings(BaseSettings):
    """Settings read from arguments, variables, `*_FILE` secrets and a TOML file, in order."""

    # The TOML file looked for in the home folder (`hub.toml`, `node.toml`).
    toml_name: ClassVar[str]

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        prefix = str(cls.model_config.get("env_prefix", ""))
        return sources(
            settings_cls, init_settings, env_settings, prefix=prefix, toml_name=cls.toml_name
        )
