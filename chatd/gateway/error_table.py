"""One table from error class to what the transports make of it: HTTP status, close code.

Looked up along the class hierarchy, most specific first, as Starlette looks up its
exception handlers: an error class not in the table takes its nearest ancestor's entry, so a
new error needs a row only when it must differ from its parent.  One row per wire code: two
classes that share a code are a class and its subclass (``StoreClosedError`` is an
``UnavailableError``; ``UnauthenticatedError`` is the ``AuthError`` that names no reason).

The close code applies where an error ends a WebSocket session (authentication and the
account's state); every other error is an error reply and the session goes on.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from chatd.core.errors import (
    AttachmentArchived,
    AttachmentError,
    AttachmentTooLarge,
    AuthError,
    ChatdError,
    ClientError,
    ConflictError,
    CorruptFile,
    ForbiddenError,
    FrameTooLargeError,
    ImageProcessingFailed,
    ImageTooLarge,
    NotFoundError,
    RateLimitedError,
    RequestTimeoutError,
    TokenExpiredError,
    TokenRevokedError,
    TooManySessionsError,
    UnavailableError,
    UserDisabledError,
)
from chatd.gateway.wire import CloseCode


@dataclass(frozen=True, slots=True)
class Transport:
    status: int  # the HTTP status of an HTTP route's error answer
    close: CloseCode | None = None  # the close code when the error ends a WebSocket session


TABLE: Mapping[type[ChatdError], Transport] = {
    ChatdError: Transport(500),  # internal_error: nothing about the server leaks
    ClientError: Transport(400),
    FrameTooLargeError: Transport(413),
    AuthError: Transport(401, CloseCode.UNAUTHENTICATED),
    TokenExpiredError: Transport(401, CloseCode.TOKEN_EXPIRED),
    TokenRevokedError: Transport(401, CloseCode.LOGGED_OUT),
    ForbiddenError: Transport(403),
    UserDisabledError: Transport(403, CloseCode.USER_DISABLED),
    NotFoundError: Transport(404),
    ConflictError: Transport(409),
    RateLimitedError: Transport(429),
    RequestTimeoutError: Transport(408),
    TooManySessionsError: Transport(429, CloseCode.TOO_MANY_SESSIONS),
    UnavailableError: Transport(503, CloseCode.GOING_AWAY),
    AttachmentError: Transport(415),  # unsupported_file_type and other refusals of content
    AttachmentTooLarge: Transport(413),
    ImageTooLarge: Transport(422),
    CorruptFile: Transport(422),
    ImageProcessingFailed: Transport(422),
    AttachmentArchived: Transport(410),
}


def transport(exc: BaseException) -> Transport:
    """The entry of ``exc``'s nearest class in :data:`TABLE` (500 for anything else)."""
    for kind in type(exc).__mro__:
        entry = TABLE.get(kind)
        if entry is not None:
            return entry
    return TABLE[ChatdError]


def close_code_for(exc: BaseException) -> CloseCode:
    """The close code of an error that ends a session during authentication."""
    return transport(exc).close or CloseCode.UNAUTHENTICATED
