"""Parsers of ``CHATD_*`` values: text as an operator writes it, to the typed value, or an
:class:`InvalidValue` whose sentence names the variable."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from pathlib import Path
from typing import Any

from chatd.i18n import LANGUAGES, N_, Text, fill


class InvalidValue(ValueError):
    """A value a parser refuses: a sentence (a message id marked with ``N_``, its
    ``{variable}`` filled with the variable's name) and its values."""

    def __init__(self, msgid: str, **params: Any) -> None:
        super().__init__(fill(msgid, {"variable": "value", **params}))
        self.msgid = msgid
        self.params = params

    def about(self, variable: str) -> Text:
        return Text(self.msgid, {**self.params, "variable": variable})


def parse_int(minimum: int, maximum: int) -> Callable[[str], int]:
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


def parse_choice(*choices: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.strip().upper()
        if value not in choices:
            raise InvalidValue(_ONE_OF, choices=", ".join(choices), raw=repr(raw))
        return value

    return parse


def parse_path(raw: str) -> Path:
    if not raw.strip():
        raise InvalidValue(N_("{variable}: expected a path, got an empty value."))
    return Path(raw).expanduser()


def parse_bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise InvalidValue(N_("{variable}: expected true or false, got {raw}."), raw=repr(raw))


def parse_url(raw: str) -> str:
    value = raw.strip()
    if value and not value.startswith(("https://", "http://")):
        raise InvalidValue(
            N_("{variable}: expected an http(s):// address, got {raw}."), raw=repr(raw)
        )
    return value


def parse_broker_url(raw: str) -> str:
    value = raw.strip()
    if value and not value.startswith(("nats://", "tls://")):
        raise InvalidValue(
            N_("{variable}: expected a nats:// or tls:// address, got {raw}."), raw=repr(raw)
        )
    return value


def parse_database_url(raw: str) -> str:
    """``postgresql://…`` (or ``postgres://…``), or ``sqlite:///PATH``; the empty value
    keeps ``CHATD_DATABASE``."""
    value = raw.strip()
    if not value:
        return value
    if value.startswith(("postgresql://", "postgres://")):
        return value
    if value.startswith("sqlite:///") and len(value) > len("sqlite:///"):
        return value
    raise InvalidValue(
        N_("{variable}: expected a postgresql:// or sqlite:/// address, got {raw}."),
        raw=repr(_without_password(value)),
    )


def _without_password(url: str) -> str:
    """A URL as it may be shown: its password (if any) replaced by ***."""
    scheme, sep, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    if not sep or not at or ":" not in credentials:
        return url
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}"


def parse_node_id(raw: str) -> str:
    value = raw.strip()
    if len(value) > 64 or not all(c.isascii() and (c.isalnum() or c in "-_") for c in value):
        raise InvalidValue(
            N_("{variable}: expected at most 64 letters, digits, - or _, got {raw}."),
            raw=repr(raw),
        )
    return value


def parse_language(raw: str) -> str:
    value = raw.strip().lower()
    if value not in LANGUAGES:
        raise InvalidValue(_ONE_OF, choices=", ".join(LANGUAGES), raw=repr(raw))
    return value


def parse_list(raw: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in raw.split(",") if item.strip())


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(raw: str) -> tuple[Network, ...]:
    """Comma-separated IP addresses or CIDR blocks (``10.0.0.7, 192.168.0.0/24, ::1``)."""
    networks: list[Network] = []
    for item in parse_list(raw):
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise InvalidValue(
                N_("{variable}: expected IP addresses or networks (CIDR), got {raw}."),
                raw=repr(item),
            ) from None
    return tuple(networks)


def written(value: Any) -> str:
    """A value as an operator writes it in the environment (``var``, ``FULL``, empty)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return ",".join(str(item) for item in value)
    return str(value)
