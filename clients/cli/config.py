"""Where chatd-cli keeps things, and the token cache.

Layout, under the config directory (``$CHATD_CLI_CONFIG_DIR``, else
``$XDG_CONFIG_HOME/chatd-cli``, else ``~/.config/chatd-cli``; created mode 0700)::

    config.json                    {"server": <the server of the last login>}
    servers/<server-slug>/session.json     the token of that server, the user's profile and
                                           their account's language (mode 0600)
    servers/<server-slug>/outbox-<user id>.json   changes not yet acknowledged (mode 0600)

Tokens are cached per server, so that one can be logged in on a test and a production server
at once.  Files holding a token or pending messages are written atomically (a temporary file
then ``rename``) with mode 0600 from their creation, never widened afterwards.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from clients.cli.errors import AuthError
from clients.cli.i18n import _
from clients.cli.protocol import normalise_server

DEFAULT_SERVER = "http://127.0.0.1:8470"  # chatd serve's default address
# Every variable of chatd-cli is named CHATD_CLI_*: the server ignores that namespace (and
# refuses any other CHATD_* name it does not know).  CHATD_SERVER is the older name of
# CHATD_CLI_SERVER, still read when the new one is not set.
ENV_CONFIG_DIR = "CHATD_CLI_CONFIG_DIR"
ENV_SERVER = "CHATD_CLI_SERVER"
ENV_SERVER_OLD = "CHATD_SERVER"


def config_dir() -> Path:
    explicit = os.environ.get(ENV_CONFIG_DIR)
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CONFIG_HOME")
    base = Path(xdg) if xdg else Path.home() / ".config"
    return base / "chatd-cli"


def private_dir(path: Path) -> Path:
    """Create ``path`` and every missing directory from the config dir down, mode 0700
    (``mkdir(parents=True)`` would give the intermediate ones the umask's mode)."""
    root = config_dir()
    chain = [path, *path.parents]
    inside = chain[: chain.index(root) + 1] if root in chain else [path]
    inside[-1].parent.mkdir(parents=True, exist_ok=True)
    for directory in reversed(inside):
        with contextlib.suppress(FileExistsError):
            directory.mkdir(mode=0o700)
    return path


def write_private(path: Path, text: str) -> None:
    """Replace ``path`` atomically with ``text``, mode 0600 from the first byte."""
    private_dir(path.parent)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # O_CREAT's mode is filtered by the umask; 0600 is already narrow
        os.write(fd, text.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def server_slug(server: str) -> str:
    """A directory name for a server URL: readable, and unique through a short digest."""
    readable = re.sub(r"[^A-Za-z0-9.-]+", "_", server.split("://", 1)[-1]).strip("_")
    digest = hashlib.sha256(server.encode()).hexdigest()[:8]
    return f"{readable[:60]}-{digest}"


def server_dir(server: str) -> Path:
    return config_dir() / "servers" / server_slug(server)


# ----------------------------------------------------------------------------- current server


def current_server(explicit: str | None = None) -> str:
    """``--server``, else ``$CHATD_CLI_SERVER`` (or its older name ``$CHATD_SERVER``), else
    the server of the last login, else the default address of ``chatd serve``."""
    chosen = explicit or os.environ.get(ENV_SERVER) or os.environ.get(ENV_SERVER_OLD)
    if not chosen:
        with contextlib.suppress(OSError, ValueError, AttributeError):
            chosen = json.loads((config_dir() / "config.json").read_text()).get("server")
    return normalise_server(chosen or DEFAULT_SERVER)


def remember_server(server: str) -> None:
    write_private(config_dir() / "config.json", json.dumps({"server": server}) + "\n")


# ----------------------------------------------------------------------------- token cache


@dataclass(frozen=True)
class Session:
    """One login on one server, as cached in ``session.json``."""

    server: str
    token: str
    expires_at: int  # ms since the epoch, server clock
    # The login answer's user: id, login, names, profession, structure, and ``language``, the
    # account's language ("fr", "en", or None: not chosen), kept up to date by each ``hello``.
    user: dict[str, Any]

    @property
    def user_id(self) -> int:
        return int(self.user["id"])

    @property
    def login(self) -> str:
        return str(self.user.get("login", self.user_id))


def session_path(server: str) -> Path:
    return server_dir(server) / "session.json"


def save_session(session: Session) -> None:
    write_private(session_path(session.server), json.dumps(asdict(session), indent=1) + "\n")
    remember_server(session.server)


def load_session(server: str, *, now_ms: int | None = None) -> Session:
    """The cached login for ``server``, or :class:`AuthError` (not logged in, or expired)."""
    path = session_path(server)
    try:
        data = json.loads(path.read_text())
        session = Session(
            server=server,
            token=str(data["token"]),
            expires_at=int(data["expires_at"]),
            user=dict(data["user"]),
        )
        session.user_id  # noqa: B018 - validates the cached user id
    except FileNotFoundError:
        raise AuthError(
            _(
                "You are not logged in on {server}; log in first:"
                " chatd-cli login --server {server}",
                server=server,
            ),
            code="unauthenticated",
        ) from None
    except (OSError, ValueError, KeyError, TypeError):
        raise AuthError(
            _(
                "The cached session for {server} is unreadable; please log in again:"
                " chatd-cli login",
                server=server,
            ),
            code="unauthenticated",
        ) from None
    now = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    if session.expires_at <= now:
        raise AuthError(
            _("Your session has expired; please log in again: chatd-cli login"),
            code="token_expired",
        )
    return session


def cached_user(server: str) -> dict[str, Any] | None:
    """The user map of the session cached for ``server``, expired or not, or None (no
    session, or an unreadable one): what chatd-cli knows of the account before it connects
    (its language, for one)."""
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError, AttributeError):
        user = json.loads(session_path(server).read_text())["user"]
        if isinstance(user, dict):
            return user
    return None


def remember_language(session: Session, chosen: str | None) -> Session:
    """The account's language as the server now says it (login, ``hello``, ``set_language``),
    kept in the cached session — if that file still holds this session: a logout or another
    login meanwhile is not undone."""
    updated = replace(session, user={**session.user, "language": chosen})
    path = session_path(session.server)
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError, AttributeError):
        data = json.loads(path.read_text())
        if data["token"] == session.token and data["user"].get("language", "") != chosen:
            data["user"]["language"] = chosen
            write_private(path, json.dumps(data, indent=1) + "\n")
    return updated


def forget_session(server: str) -> bool:
    try:
        session_path(server).unlink()
    except FileNotFoundError:
        return False
    return True
