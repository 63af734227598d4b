"""Where chatd-cli keeps its files, and the token cache."""

from __future__ import annotations

import stat
import time
from pathlib import Path

import pytest

from clients.cli import config
from clients.cli.errors import AuthError


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in (config.ENV_CONFIG_DIR, config.ENV_SERVER, "XDG_CONFIG_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    return tmp_path


def test_config_dir_precedence(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert config.config_dir() == home / ".config" / "chatd-cli"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "xdg"))
    assert config.config_dir() == home / "xdg" / "chatd-cli"
    monkeypatch.setenv(config.ENV_CONFIG_DIR, str(home / "explicit"))
    assert config.config_dir() == home / "explicit"


def test_server_choice_and_slugs(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert config.current_server() == config.DEFAULT_SERVER
    config.remember_server("https://chat.example.org")
    assert config.current_server() == "https://chat.example.org"
    monkeypatch.setenv(config.ENV_SERVER, "http://10.0.0.1:9000")
    assert config.current_server() == "http://10.0.0.1:9000"
    assert config.current_server("other:1") == "http://other:1"
    assert config.server_slug("http://a:1") != config.server_slug("http://a:2")


def test_token_cache(home: Path) -> None:
    server = "http://127.0.0.1:8470"
    with pytest.raises(AuthError, match="not logged in"):
        config.load_session(server)
    now = time.time_ns() // 1_000_000
    user = {"id": 4, "login": "c.dupont", "first_name": "Claire"}
    config.save_session(config.Session(server, "secret-token", now + 60_000, user))
    path = config.session_path(server)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(config.config_dir().stat().st_mode) == 0o700
    session = config.load_session(server)
    assert (session.token, session.user_id, session.login) == ("secret-token", 4, "c.dupont")
    with pytest.raises(AuthError, match="expired; please log in again") as info:
        config.load_session(server, now_ms=now + 60_000)
    assert info.value.code == "token_expired"
    path.write_text("{")
    with pytest.raises(AuthError, match="unreadable"):
        config.load_session(server)
    assert config.forget_session(server) and not config.forget_session(server)
