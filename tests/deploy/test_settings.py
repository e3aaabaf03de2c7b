"""Settings: TOML file, *_FILE secrets, precedence, secrets never shown, reference page current."""

from pathlib import Path

import pytest
from pydantic import ValidationError

from hub.settings import HubSettings
from node.settings import NodeSettings
from sauti import settings_doc


def test_the_committed_reference_page_is_current() -> None:
    assert settings_doc.PAGE.read_text() == settings_doc.render(), (
        "docs/settings.md is out of date: run python -m sauti.settings_doc"
    )


def test_toml_in_the_home_is_read_and_the_environment_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "node.toml").write_text("clock_skew_seconds = 42\nimport_max_bytes = 1000\n")
    (tmp_path / "hub.toml").write_text('request_ttl_seconds = 77\ncelery_queue = "q1"\n')
    monkeypatch.setenv("NODE_IMPORT_MAX_BYTES", "2000")
    node = NodeSettings(home=tmp_path)
    assert (node.clock_skew_seconds, node.import_max_bytes) == (42, 2000)
    hub = HubSettings(home=tmp_path)
    assert (hub.request_ttl_seconds, hub.celery_queue) == (77, "q1")
    assert HubSettings(home=tmp_path, request_ttl_seconds=5).request_ttl_seconds == 5


def test_config_file_variable_names_the_toml(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path / "etc" / "sauti-node.toml"
    elsewhere.parent.mkdir()
    elsewhere.write_text("audit_checkpoint_every = 7\n")
    monkeypatch.setenv("NODE_CONFIG_FILE", str(elsewhere))
    assert NodeSettings(home=tmp_path).audit_checkpoint_every == 7
    monkeypatch.setenv("NODE_CONFIG_FILE", str(tmp_path / "missing.toml"))
    with pytest.raises(ValueError, match="NODE_CONFIG_FILE"):
        NodeSettings(home=tmp_path)


def test_a_misspelt_node_setting_in_toml_is_refused(tmp_path: Path) -> None:
    (tmp_path / "node.toml").write_text("clock_skew_secnds = 1\n")
    with pytest.raises(ValidationError, match="clock_skew_secnds"):
        NodeSettings(home=tmp_path)


def test_secrets_come_from_files_and_are_never_shown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = tmp_path / "pg-password"
    secret.write_text("s3cr3t-pw\n")
    monkeypatch.setenv("HUB_DATABASE_URL", "postgresql://sauti@db:5432/hub")
    monkeypatch.setenv("HUB_DATABASE_PASSWORD_FILE", str(secret))
    monkeypatch.setenv("HUB_METRICS_TOKEN", "metrics-t0ken")
    hub = HubSettings(home=tmp_path)
    assert hub.effective_database_url == "postgresql://sauti:s3cr3t-pw@db:5432/hub"
    shown = f"{hub!r} {hub} {hub.model_dump()} {hub.model_dump_json()}"
    assert "s3cr3t-pw" not in shown
    assert "metrics-t0ken" not in shown

    node_url = tmp_path / "node-url"
    node_url.write_text("postgresql://steward:pw-in-url@db/node")
    monkeypatch.setenv("NODE_DATABASE_URL_FILE", str(node_url))
    node = NodeSettings(home=tmp_path)
    assert node.db_url == "postgresql://steward:pw-in-url@db/node"
    assert "pw-in-url" not in repr(node)


def test_an_unreadable_secret_file_names_the_variable_not_a_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NODE_METRICS_TOKEN_FILE", str(tmp_path / "nope"))
    with pytest.raises(ValueError, match="NODE_METRICS_TOKEN_FILE"):
        NodeSettings(home=tmp_path)


def test_the_default_database_is_sqlite_in_the_home(tmp_path: Path) -> None:
    assert NodeSettings(home=tmp_path).db_url == f"sqlite:///{tmp_path}/node.sqlite"
    assert HubSettings(home=tmp_path).effective_database_url == f"sqlite:///{tmp_path}/hub.sqlite"
