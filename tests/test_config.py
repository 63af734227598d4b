"""Configuration from CHATD_* variables."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from chatd.config import Settings
from chatd.errors import ConfigError


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
