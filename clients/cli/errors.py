"""What can go wrong, as exceptions that carry their exit code and a sentence for the user.

Every failure the user can meet ends as one :class:`CliError`: ``main`` prints its message
and exits with its code, never a traceback.  Server error codes (``docs/protocol.md`` §10) are
mapped to the four families a script can act on: log in again, check the conversation or
person, check the network, or something else was refused.
"""

from __future__ import annotations

import enum
from typing import Any


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


LOGIN_AGAIN = "please log in again: chatd-cli login"

_AUTH_CODES = {
    "invalid_credentials": "Wrong login or password.",
    "unauthenticated": f"You are not logged in on this server; {LOGIN_AGAIN}",
    "token_expired": f"Your session has expired; {LOGIN_AGAIN}",
    "logged_out": f"This session was logged out; {LOGIN_AGAIN}",
    "user_disabled": "This account is disabled; contact your administrator.",
    "terms_not_accepted": f"The terms of use must be accepted first; {LOGIN_AGAIN}",
    "terms_version_mismatch": f"The terms of use changed; {LOGIN_AGAIN}",
    "password_change_required": "Your password was reset by an administrator; choose a new"
    " one first: chatd-cli passwd",
}
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
}
# Worth retrying the same request later (protocol §10), within the command's time limit.
RETRY_LATER = frozenset({"unavailable", "internal_error", "rate_limited"})


def server_error(code: str, message: str, details: dict[str, Any] | None = None) -> CliError:
    """The :class:`CliError` for an error answer of the server."""
    if code in _AUTH_CODES:
        # Our own sentence: the server's does not know the command to type.
        return AuthError(_AUTH_CODES[code], code=code, details=details)
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
        return AuthError(_AUTH_CODES[name], code=name)
    if code in (1003, 1009):  # our own bug: a text frame, a frame too large
        return CliError(f"The server closed the connection ({code}): a client bug.")
    return None
