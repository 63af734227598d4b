"""Typed configuration read from ``CHATD_*`` environment variables.

Every setting has an embedded default so that ``chatd serve`` works on a fresh machine.  A value
that is present but invalid stops the server at start-up with a message naming the variable and
what was expected: a health messenger must not run on a silently-ignored setting.  Unknown
``CHATD_*`` variables are refused too, because a typo (``CHATD_VISIBLE_WINDOWS``) would
otherwise be ignored without a word.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

from chatd.core.errors import ConfigError
from chatd.i18n import LANGUAGES, N_, Sentences, Text, fill

PREFIX = "CHATD_"
# The terminal client's variables live in a namespace of their own, so that a terminal set up
# for chatd-cli (README: ``export CHATD_CLI_CONFIG_DIR=…``) still runs every ``chatd`` command.
# ``CHATD_SERVER`` is the client's older name for ``CHATD_CLI_SERVER``, still honoured by it.
CLIENT_PREFIX = "CHATD_CLI_"
CLIENT_VARIABLES = frozenset({"CHATD_SERVER"})


def is_client_variable(name: str) -> bool:
    """A ``CHATD_*`` name that belongs to chatd-cli, not to the server: ignored here."""
    return name.startswith(CLIENT_PREFIX) or name in CLIENT_VARIABLES


SqliteSynchronous = Literal["FULL", "NORMAL", "EXTRA"]


class InvalidValue(ValueError):
    """A value a parser refuses: a sentence (a message id marked with ``N_``, its
    ``{variable}`` filled with the variable's name) and its values."""

    def __init__(self, msgid: str, **params: Any) -> None:
        super().__init__(fill(msgid, {"variable": "value", **params}))
        self.msgid = msgid
        self.params = params

    def about(self, variable: str) -> Text:
        return Text(self.msgid, {**self.params, "variable": variable})


def _parse_int(minimum: int, maximum: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(raw.strip())
        except ValueError:
            raise InvalidValue(
                N_("{variable}: expected a whole number, got {raw}."), raw=repr(raw)
            ) from None
        if not minimum <= value <= maximum:
            raise InvalidValue(
                N_("{variable}: expected a number from {min} to {max}, got {value}."),
                min=minimum,
                max=maximum,
                value=value,
            )
        return value

    return parse


_ONE_OF = N_("{variable}: expected one of {choices}, got {raw}.")


def _parse_choice(*choices: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.strip().upper()
        if value not in choices:
            raise InvalidValue(_ONE_OF, choices=", ".join(choices), raw=repr(raw))
        return value

    return parse


def _parse_path(raw: str) -> Path:
    if not raw.strip():
        raise InvalidValue(N_("{variable}: expected a path, got an empty value."))
    return Path(raw).expanduser()


def _parse_bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise InvalidValue(N_("{variable}: expected true or false, got {raw}."), raw=repr(raw))


def _parse_url(raw: str) -> str:
    value = raw.strip()
    if value and not value.startswith(("https://", "http://")):
        raise InvalidValue(
            N_("{variable}: expected an http(s):// address, got {raw}."), raw=repr(raw)
        )
    return value


def _parse_language(raw: str) -> str:
    value = raw.strip().lower()
    if value not in LANGUAGES:
        raise InvalidValue(_ONE_OF, choices=", ".join(LANGUAGES), raw=repr(raw))
    return value


def _parse_list(raw: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in raw.split(",") if item.strip())


def _setting(default: Any, parse: Callable[[str], Any], doc: str) -> Any:
    return dataclasses.field(default=default, metadata={"parse": parse, "doc": doc})


@dataclasses.dataclass(frozen=True)
class Settings:
    """All settings; the environment variable is ``CHATD_`` + the upper-cased field name."""

    data_dir: Path = _setting(
        Path("var"), _parse_path, N_("Directory of the database and key file.")
    )
    database: Path | None = _setting(
        None, _parse_path, N_("SQLite database file (default: DATA_DIR/chatd.sqlite3).")
    )
    master_key_file: Path | None = _setting(
        None, _parse_path, N_("Master key file, mode 0600 (default: DATA_DIR/master.keys).")
    )
    visible_window: int = _setting(
        200, _parse_int(1, 100_000), N_("Number of most recent messages a user can read.")
    )
    retention_years: int = _setting(
        10, _parse_int(1, 100), N_("Years a conversation is kept after its last event.")
    )
    sqlite_synchronous: str = _setting(
        "FULL", _parse_choice("FULL", "EXTRA", "NORMAL"), N_("SQLite synchronous mode (WAL).")
    )
    max_batch: int = _setting(
        512, _parse_int(1, 100_000), N_("Most writes committed together in one group commit.")
    )
    max_attachment_bytes: int = _setting(
        10 * 1024 * 1024, _parse_int(1024, 1024**3), N_("Largest attachment upload, in bytes.")
    )
    max_image_pixels: int = _setting(
        50_000_000,
        _parse_int(1_000_000, 89_000_000),
        N_("Most pixels an uploaded image may have (larger ones are refused, not decoded)."),
    )
    attachment_ttl_seconds: int = _setting(
        86_400,
        _parse_int(60, 30 * 86_400),
        N_("Seconds an upload waits for a message to send it before it is discarded."),
    )
    attachment_sweep_seconds: int = _setting(
        600, _parse_int(0, 86_400), N_("Seconds between sweeps of expired uploads (0: never).")
    )
    host: str = _setting("127.0.0.1", str, N_("Address the gateway listens on."))
    port: int = _setting(8470, _parse_int(0, 65535), N_("TCP port of the gateway."))
    tls_cert_file: Path | None = _setting(None, _parse_path, N_("TLS certificate (PEM)."))
    tls_key_file: Path | None = _setting(None, _parse_path, N_("TLS private key (PEM)."))
    allowed_origins: tuple[str, ...] = _setting(
        (), _parse_list, N_("Comma-separated Origin values browsers may connect from.")
    )
    terms_version: str = _setting("2026-01", str, N_("Terms of use users must accept."))
    terms_url: str = _setting(
        "", _parse_url, N_("Where users read the terms of use (https://…); shown with the version.")
    )
    session_hours: int = _setting(8, _parse_int(1, 24 * 30), N_("Lifetime of a login token."))
    max_frame_bytes: int = _setting(
        65536, _parse_int(1024, 16 * 1024 * 1024), N_("Largest frame a client may send (1009).")
    )
    ws_rate: int = _setting(20, _parse_int(1, 1_000_000), N_("Requests/second per connection."))
    ws_burst: int = _setting(100, _parse_int(1, 1_000_000), N_("Request burst per connection."))
    ws_queue: int = _setting(
        1000, _parse_int(4, 1_000_000), N_("Frames queued per connection before close 4005.")
    )
    ws_idle_seconds: int = _setting(
        300, _parse_int(1, 86_400), N_("Seconds without a request before close 4006.")
    )
    ws_ping_seconds: int = _setting(
        20, _parse_int(0, 3600), N_("WebSocket keepalive ping interval (0: none).")
    )
    auth_timeout_seconds: int = _setting(
        5, _parse_int(1, 60), N_("Seconds a new connection has to authenticate (4000).")
    )
    default_language: str = _setting(
        "fr",
        _parse_language,
        N_("Language of users who chose none and whose client asks for none (fr or en)."),
    )
    debug: bool = _setting(False, _parse_bool, N_("Verbose logging (never logs content)."))

    @property
    def database_path(self) -> Path:
        return self.database or self.data_dir / "chatd.sqlite3"

    @property
    def attachments_dir(self) -> Path:
        # Next to the database, so that every process opening it (the server, admin
        # commands) finds the same files.
        return self.database_path.parent / "attachments"

    @property
    def key_file_path(self) -> Path:
        return self.master_key_file or self.data_dir / "master.keys"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Read settings from ``environ`` (default ``os.environ``); raise ConfigError if bad."""
        env = os.environ if environ is None else environ
        fields = {f.name: f for f in dataclasses.fields(cls)}
        values: dict[str, Any] = {}
        problems: list[Text] = []
        for key, raw in env.items():
            if not key.startswith(PREFIX) or is_client_variable(key):
                continue
            name = key[len(PREFIX) :].lower()
            field = fields.get(name)
            if field is None:
                problems.append(Text(N_("{variable} is not a chatd setting."), {"variable": key}))
                continue
            try:
                values[name] = field.metadata["parse"](raw)
            except InvalidValue as exc:
                problems.append(exc.about(key))
        if (values.get("tls_cert_file") is None) != (values.get("tls_key_file") is None):
            problems.append(
                Text(N_("CHATD_TLS_CERT_FILE and CHATD_TLS_KEY_FILE must be set together."))
            )
        if problems:
            raise ConfigError(
                N_("Invalid configuration: {problems}"), problems=Sentences(tuple(problems))
            )
        values.update(overrides)
        return cls(**values)

    @classmethod
    def describe(cls) -> list[tuple[str, str, str]]:
        """(variable, default, description) for every setting, for ``--help`` and docs; the
        description is an English message id (``chatd settings`` says it translated)."""
        return [
            (PREFIX + f.name.upper(), written(f.default), f.metadata["doc"])
            for f in dataclasses.fields(cls)
        ]


def written(value: Any) -> str:
    """A value as an operator writes it in the environment (``var``, ``FULL``, empty)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return ",".join(str(item) for item in value)
    return str(value)
