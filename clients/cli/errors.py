"""What can go wrong, as exceptions that carry their exit code and a sentence for the user.

Every failure the user can meet ends as one :class:`CliError`: ``main`` prints its message
— a sentence already translated (``clients.cli.i18n``) — and exits with its code, never a
traceback.  Server error codes (``docs/protocol.md`` §10) are
mapped to the four families a script can act on: log in again, check the conversation or
person, check the network, or something else was refused.
"""

from __future__ import annotations

import enum
from typing import Any

from clients.cli.i18n import _


class ExitCode(enum.IntEnum):
    OK = 0
    FAILED = 1  # the server refused the change, or the user cancelled it
    USAGE = 2  # a bad command line (argparse's own code)
    AUTH = 3  # not logged in, session expired or revoked, terms, bad password, disabled
    NOT_FOUND = 4  # no such conversation or person, or no longer a member
    NETWORK = 5  # the server could not be reached or did not answer in time
    INTERRUPTED = 130  # Ctrl-C during a command that is not meant to run until interrupted


class CliError(Exception):
    exit_code = ExitCode.FAILED

    def __init__(
        self, message: str, *, code: str | None = None, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code  # the server's stable code, when the server said it
        self.details = details or {}


class ConnectionLost(Exception):
    """Internal: the connection dropped before the answer; retry on the next one."""


class UsageError(CliError):
    exit_code = ExitCode.USAGE


class AuthError(CliError):
    exit_code = ExitCode.AUTH


class NotFoundError(CliError):
    exit_code = ExitCode.NOT_FOUND


class NetworkError(CliError):
    exit_code = ExitCode.NETWORK


class Cancelled(CliError):
    exit_code = ExitCode.FAILED


def auth_sentence(code: str) -> str | None:
    """Our own sentence for an authentication refusal (the server's does not know the
    command to type), or None if ``code`` is not one."""
    match code:
        case "invalid_credentials":
            return _("Wrong login or password.")
        case "unauthenticated":
            return _("You are not logged in on this server; please log in again: chatd-cli login")
        case "token_expired":
            return _("Your session has expired; please log in again: chatd-cli login")
        case "logged_out":
            return _("This session was logged out; please log in again: chatd-cli login")
        case "user_disabled":
            return _("This account is disabled; contact your administrator.")
        case "terms_not_accepted":
            return _(
                "The terms of use must be accepted first; please log in again: chatd-cli login"
            )
        case "terms_version_mismatch":
            return _("The terms of use changed; please log in again: chatd-cli login")
        case "password_change_required":
            return _(
                "Your password was reset by an administrator; choose a new one first:"
                " chatd-cli passwd"
            )
    return None


_NOT_FOUND_CODES = {
    "conversation_not_found",
    "not_a_member",
    "user_not_found",
    "conversation_expired",
    "not_found",
    "forbidden",
    "attachment_not_found",
    "thumbnail_not_found",
    "attachment_archived",
    "session_not_found",
}
# Worth retrying the same request later (protocol §10), within the command's time limit.
RETRY_LATER = frozenset({"unavailable", "internal_error", "rate_limited"})


def server_error(code: str, message: str, details: dict[str, Any] | None = None) -> CliError:
    """The :class:`CliError` for an error answer of the server; ``message`` is the server's
    sentence, already in the language chatd-cli asked for: shown as it is."""
    sentence = auth_sentence(code)
    if sentence is not None:
        return AuthError(sentence, code=code, details=details)
    if code in _NOT_FOUND_CODES:
        return NotFoundError(message, code=code, details=details)
    if code in RETRY_LATER:
        return NetworkError(message, code=code, details=details)
    return CliError(message, code=code, details=details)


# WebSocket close codes after which reconnecting cannot help (protocol §11).
_AUTH_CLOSES = {
    4001: "unauthenticated",
    4002: "token_expired",
    4003: "logged_out",
    4004: "user_disabled",
}


def close_error(code: int | None) -> CliError | None:
    """The error a close code means for the user, or None if reconnecting is the answer."""
    if code in _AUTH_CLOSES:
        name = _AUTH_CLOSES[code]
        return AuthError(auth_sentence(name) or name, code=name)
    if code == 4008:  # the account's live connections are at the server's cap
        return CliError(
            _(
                "You have too many connections open to this server; close a chatd-cli or"
                " an application you no longer use, then retry."
            ),
            code="too_many_sessions",
        )
    if code in (1003, 1009):  # our own bug: a text frame, a frame too large
        return CliError(
            _("The server closed the connection ({code}): a client bug.", code=str(code))
        )
    return None
