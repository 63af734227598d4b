"""Configuration from CHATD_* variables."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from chatd.config import Settings
from chatd.core.errors import ConfigError


def test_defaults_from_an_empty_environment() -> None:
    s = Settings.from_env({})
    assert s.data_dir == Path("var")
    assert s.database_path == Path("var") / "chatd.sqlite3"
    assert s.key_file_path == Path("var") / "master.keys"
    assert s.visible_window == 200
    assert s.retention_years == 10
    assert s.sqlite_synchronous == "FULL"
    assert s.port == 8470
    assert s.host == "127.0.0.1"
    assert s.allowed_origins == ()
    assert s.session_hours == 8
    assert s.debug is False
    assert s.tls_cert_file is None and s.tls_key_file is None


def test_other_variables_are_ignored() -> None:
    assert Settings.from_env({"HOME": "/root", "CHATDX": "1", "chatd_port": "1"}) == Settings()


def test_values_are_parsed() -> None:
    s = Settings.from_env(
        {
            "CHATD_DATA_DIR": "/srv/chatd",
            "CHATD_VISIBLE_WINDOW": " 50 ",
            "CHATD_SQLITE_SYNCHRONOUS": "normal",
            "CHATD_PORT": "0",
            "CHATD_ALLOWED_ORIGINS": "https://a.example, ,https://b.example,",
            "CHATD_DEBUG": "Yes",
            "CHATD_TLS_CERT_FILE": "/etc/chatd/cert.pem",
            "CHATD_TLS_KEY_FILE": "/etc/chatd/key.pem",
            "CHATD_MASTER_KEY_FILE": "/run/secrets/chatd.keys",
        }
    )
    assert s.data_dir == Path("/srv/chatd")
    assert s.database_path == Path("/srv/chatd/chatd.sqlite3")
    assert s.key_file_path == Path("/run/secrets/chatd.keys")
    assert s.visible_window == 50
    assert s.sqlite_synchronous == "NORMAL"
    assert s.port == 0
    assert s.allowed_origins == ("https://a.example", "https://b.example")
    assert s.debug is True
    assert s.tls_cert_file == Path("/etc/chatd/cert.pem")


@pytest.mark.parametrize("raw", ["0", "false", "No", "off"])
def test_false_booleans(raw: str) -> None:
    assert Settings.from_env({"CHATD_DEBUG": raw}).debug is False


def test_unknown_chatd_variable_is_refused() -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"CHATD_VISIBLE_WINDOWS": "100"})
    assert "CHATD_VISIBLE_WINDOWS" in caught.value.message


@pytest.mark.parametrize(
    ("variable", "raw"),
    [
        ("CHATD_VISIBLE_WINDOW", "abc"),
        ("CHATD_VISIBLE_WINDOW", "0"),
        ("CHATD_VISIBLE_WINDOW", "100001"),
        ("CHATD_PORT", "65536"),
        ("CHATD_PORT", "-1"),
        ("CHATD_RETENTION_YEARS", "1.5"),
        ("CHATD_SQLITE_SYNCHRONOUS", "OFF"),
        ("CHATD_DEBUG", "maybe"),
        ("CHATD_DATA_DIR", "  "),
        ("CHATD_MAX_BATCH", ""),
    ],
)
def test_bad_value_names_the_variable(variable: str, raw: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({variable: raw})
    assert variable in caught.value.message
    assert caught.value.code == "config_error"


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"CHATD_PORT": "x", "CHATD_DEBUG": "x", "CHATD_NOPE": "1"})
    for variable in ("CHATD_PORT", "CHATD_DEBUG", "CHATD_NOPE"):
        assert variable in caught.value.message


def test_tls_files_go_together() -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"CHATD_TLS_CERT_FILE": "/c.pem"})
    assert "CHATD_TLS_KEY_FILE" in caught.value.message


def test_overrides_and_describe() -> None:
    s = Settings.from_env({"CHATD_PORT": "9000"}, visible_window=7)
    assert (s.port, s.visible_window) == (9000, 7)
    described = {variable: doc for variable, _, doc in Settings.describe()}
    assert set(described) == {"CHATD_" + f.name.upper() for f in dataclasses.fields(Settings)}
    assert all(doc for doc in described.values())
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.port = 1  # type: ignore[misc]


def test_the_terminal_clients_variables_are_not_the_servers() -> None:
    """A terminal set up for chatd-cli (README: ``export CHATD_CLI_CONFIG_DIR=…``) runs every
    ``chatd`` command; a typo of a server setting is still refused."""
    client = {
        "CHATD_CLI_CONFIG_DIR": "/home/claire/.config/chatd-cli-claire",
        "CHATD_CLI_SERVER": "http://127.0.0.1:8470",
        "CHATD_SERVER": "http://127.0.0.1:8470",
        "CHATD_CLI_ANYTHING_NEW": "1",
    }
    assert Settings.from_env(client) == Settings()
    with pytest.raises(ConfigError, match="CHATD_SERVERS is not a chatd setting"):
        Settings.from_env({**client, "CHATD_SERVERS": "x"})


def test_settings_are_described_as_an_operator_writes_them() -> None:
    described = {name: default for name, default, _ in Settings.describe()}
    assert described["CHATD_DATA_DIR"] == "var"
    assert described["CHATD_SQLITE_SYNCHRONOUS"] == "FULL"
    assert described["CHATD_DATABASE"] == ""
    assert described["CHATD_ALLOWED_ORIGINS"] == ""
    assert described["CHATD_DEBUG"] == "false"
    assert described["CHATD_TERMS_URL"] == ""
    assert not any("'" in default or "Path(" in default for default in described.values())


@pytest.mark.parametrize("url", ["ftp://x", "terms.html", "javascript:alert(1)"])
def test_terms_url_must_be_a_web_address(url: str) -> None:
    with pytest.raises(ConfigError, match="CHATD_TERMS_URL"):
        Settings.from_env({"CHATD_TERMS_URL": url})
