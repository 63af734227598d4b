"""The one exception hierarchy of chatd.

Every error that can reach a client is a subclass of :class:`ClientError` and carries a stable
wire ``code`` (never renamed once published; ``docs/protocol.md`` lists them) and a human
sentence.  The sentence is written for the person using the client: it never contains message
content, key material, tokens or a stack trace.

Errors that never reach a client (bad configuration, a broken key file, a tampered database)
derive from :class:`ChatdError` directly; the gateway turns any of them that escapes into the
generic ``internal_error`` so that nothing about the server's internals leaks.

Foreign exceptions (``cryptography.exceptions.InvalidTag``, ``sqlite3.IntegrityError`` …) are
translated into these at the boundary of the module that calls the foreign library.
"""

from __future__ import annotations

from typing import Any, ClassVar

from chatd.i18n import N_, Language, Text, fill, server_catalogue


class ChatdError(Exception):
    """Base of every chatd error.

    Its sentence is a gettext message id (English, marked with ``N_``) whose ``{name}``
    fields are filled from ``details``: it is translated only when the reader's language is
    known (:meth:`message_in`); :attr:`message` is the English text."""

    code: ClassVar[str] = "internal_error"
    default_message: ClassVar[str] = N_("The server could not complete the request.")

    def __init__(self, message: str | None = None, **details: Any) -> None:
        self.template = message or self.default_message
        # ``details`` are structured, non-secret facts (ids, limits) for clients and logs,
        # and the values of the sentence's fields.
        self.details = details
        super().__init__(self.message)

    @property
    def message(self) -> str:
        """The sentence in English (the message id with its fields filled)."""
        return fill(self.template, self.details)

    def message_in(self, lang: Language) -> str:
        """The sentence in ``lang``."""
        return server_catalogue(lang).format(self.template, **self.details)

    @property
    def text(self) -> Text:
        """The sentence, to be said later (inside another one, in a report)."""
        return Text(self.template, self.details)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, message={self.message!r})"


# --------------------------------------------------------------------------- server-side only


class ConfigError(ChatdError):
    """A ``CHATD_*`` setting is missing or invalid; raised at start-up, never later."""

    code = "config_error"
    default_message = N_("The server configuration is invalid.")


class KeyFileError(ChatdError):
    """The master key file is missing, unreadable, too permissive or malformed."""

    code = "key_file_error"
    default_message = N_("The master key file cannot be used.")


class IntegrityError(ChatdError):
    """Stored data failed an integrity check: a seal did not open or a hash link is broken.

    This is never the client's fault; it means the database was altered or corrupted.
    """

    code = "integrity_error"
    default_message = N_("Stored data failed its integrity check.")


class UnknownKeyError(IntegrityError):
    """A wrapped key names a key-encryption key that is not loaded."""

    code = "unknown_key"
    default_message = N_("A key needed to open stored data is not loaded.")


class DatabaseDamaged(IntegrityError):
    """The database file itself is damaged: SQLite found its pages or its schema corrupt
    (``SQLITE_CORRUPT``, ``SQLITE_NOTADB``, a schema that does not parse).  ``reason`` is
    SQLite's own words (English, and never content)."""

    code = "database_damaged"
    default_message = N_("The database is damaged.")


class HistoryRewound(IntegrityError):
    """The database does not extend the last signed checkpoint (a chain vanished, is shorter
    or forked), or the checkpoint log cannot be trusted: ``chatd serve`` refuses to start."""

    code = "history_rewound"
    default_message = N_("The database does not extend its last checkpoint.")


class DatabaseUnavailable(ChatdError):
    """The database cannot be used for a reason other than damage (it cannot be opened, a
    read-only file, a full disk, an I/O error)."""

    code = "database_unavailable"
    default_message = N_("The database cannot be used.")


class BrokerUnavailable(ChatdError):
    """The network broker (NATS) did not answer when this process started: a node that
    cannot hear the others must not pretend to serve (after the start, it reconnects on its
    own and the store fills what it missed)."""

    code = "broker_unavailable"
    default_message = N_("The broker cannot be reached.")


class ServerRunningError(ChatdError):
    """A command that needs the database to itself found a server (or a node, or another
    such command) using it: on SQLite the server lock's flock
    (:mod:`chatd.store.sqlite.lock`), on PostgreSQL the serving nodes' shared advisory lock
    (:mod:`chatd.store.postgres.serving_lock`)."""

    code = "server_running"
    default_message = N_("A chatd server is using this database.")


class MigrationError(ChatdError):
    """The database schema is newer than this code, or a migration failed."""

    code = "migration_error"
    default_message = N_("The database schema cannot be brought up to date.")


class BackupError(ChatdError):
    """A backup could not be taken, or restored: a missing tool, a place that is not empty,
    a backup that is incomplete.  Nothing was changed where it was to be restored."""

    code = "backup_error"
    default_message = N_("The backup could not be taken or restored.")


# --------------------------------------------------------------------------- client-facing


class ClientError(ChatdError):
    """An error whose code and sentence are sent to the client as they are."""

    code = "bad_request"
    default_message = N_("The request is not valid.")


class ValidationError(ClientError):
    code = "invalid_request"
    default_message = N_("The request is malformed or has an invalid field.")


class NotFoundError(ClientError):
    code = "not_found"
    default_message = N_("No such item.")


class ConversationNotFound(NotFoundError):
    """Also raised for conversations the user cannot see, so that ids cannot be probed."""

    code = "conversation_not_found"
    default_message = N_("This conversation does not exist or you are not a participant.")


class UserNotFound(NotFoundError):
    code = "user_not_found"
    default_message = N_("No such user.")


class SessionNotFound(NotFoundError):
    """No live session of the user has this id (revoked, expired, or never theirs)."""

    code = "session_not_found"
    default_message = N_("You have no open session with this number.")


class ForbiddenError(ClientError):
    code = "forbidden"
    default_message = N_("You are not allowed to do this.")


class NotAMemberError(ForbiddenError):
    code = "not_a_member"
    default_message = N_("You are no longer a participant of this conversation.")


class AlreadyMemberError(ClientError):
    code = "already_member"
    default_message = N_("This person is already a participant of the conversation.")


class UserDisabledError(ForbiddenError):
    code = "user_disabled"
    default_message = N_("This account is disabled.")


class ConflictError(ClientError):
    code = "conflict"
    default_message = N_("The request conflicts with the current state.")


class LoginTakenError(ConflictError):
    code = "login_taken"
    default_message = N_("This login is already in use.")


class ConversationShreddedError(ClientError):
    """The conversation's data key was destroyed at the end of its retention period."""

    code = "conversation_expired"
    default_message = N_("This conversation has reached the end of its retention period.")


class UnavailableError(ClientError):
    code = "unavailable"
    default_message = N_("The service is temporarily unavailable; retry shortly.")


class StoreClosedError(UnavailableError):
    """The store is closing (the server is stopping): the same wire code as its parent."""

    default_message = N_("The store is shutting down; retry shortly.")


# ------------------------------------------------------------------- gateway (auth, protocol)


class MalformedFrameError(ClientError):
    """A WebSocket frame that is not one msgpack map, or an HTTP body that is not JSON."""

    code = "malformed_frame"
    default_message = N_("The frame is not a single msgpack map.")


class UnknownOpError(ClientError):
    code = "unknown_op"
    default_message = N_("This operation does not exist.")


class InvalidStateError(ClientError):
    """An operation not allowed in the session's current state (e.g. a second ``auth``)."""

    code = "invalid_state"
    default_message = N_("This operation is not allowed now.")


class FrameTooLargeError(ClientError):
    code = "frame_too_large"
    default_message = N_("The request is larger than the server accepts.")


class RequestTimeoutError(ClientError):
    """A request body stopped arriving (``CHATD_HTTP_BODY_STALL_SECONDS`` without a byte):
    the request is cut and its connection closed."""

    code = "request_timeout"
    default_message = N_("The request stalled and was cut; send it again.")


class RateLimitedError(ClientError):
    code = "rate_limited"
    default_message = N_("Too many requests; slow down and retry shortly.")


class TooManySessionsError(ClientError):
    """The user already has ``max`` live connections, on all servers together
    (``CHATD_SESSIONS_PER_USER``): WebSocket close 4008 ``too_many_sessions``."""

    code = "too_many_sessions"
    default_message = N_(
        "You have too many open sessions; close one, or end those you no longer use"
        " (chatd-cli sessions)."
    )


class AuthError(ClientError):
    """Base of the authentication failures (HTTP 401 / WebSocket close 4001–4004)."""

    code = "unauthenticated"
    default_message = N_("Authentication is required.")


class InvalidCredentialsError(AuthError):
    """Wrong login or password; deliberately does not say which."""

    code = "invalid_credentials"
    default_message = N_("The login or the password is wrong.")


class UnauthenticatedError(AuthError):
    """No token, an unknown token, or a token revoked by a logout."""

    code = "unauthenticated"
    default_message = N_("This session is not valid; log in again.")


class TokenExpiredError(AuthError):
    code = "token_expired"
    default_message = N_("This session has expired; log in again.")


class TokenRevokedError(AuthError):
    code = "logged_out"
    default_message = N_("This session was closed by a logout; log in again.")


class TermsNotAcceptedError(ForbiddenError):
    code = "terms_not_accepted"
    default_message = N_("Accept the current terms of use before using the service.")


class TermsVersionError(ConflictError):
    code = "terms_version_mismatch"
    default_message = N_("These are not the current terms of use; reload them and accept again.")


# ---- passwords


class WeakPasswordError(ClientError):
    """A new password breaks the password rule (:mod:`chatd.core.password_policy`); the message
    says which part, in a sentence for the person choosing it."""

    code = "weak_password"
    default_message = N_("This password is too easy to guess; choose another one.")


class PasswordChangeRequiredError(ForbiddenError):
    """The account's password was reset by an administrator: until the user chose a new one,
    only changing the password (and logging out) is allowed."""

    code = "password_change_required"
    default_message = N_("Choose a new password before using the service.")


# ---- attachments


class AttachmentError(ClientError):
    """An uploaded file was refused; ``details`` may carry a machine-readable ``reason``."""

    code = "invalid_attachment"
    default_message = N_("This file cannot be attached.")


class UnsupportedFileType(AttachmentError):
    """The content is not one of the accepted types (decided from the bytes, never the name)."""

    code = "unsupported_file_type"
    default_message = N_(
        "This type of file cannot be sent. Accepted: PDF, Word, Excel, and JPEG, PNG, GIF,"
        " WebP or HEIC images."
    )


class CorruptFile(AttachmentError):
    """The content starts like an accepted type but is damaged or incomplete."""

    code = "corrupt_file"
    default_message = N_("This file is damaged or incomplete and cannot be sent.")


class AttachmentTooLarge(AttachmentError):
    """The upload is larger than ``CHATD_MAX_ATTACHMENT_BYTES`` (HTTP 413)."""

    code = "attachment_too_large"
    default_message = N_("This file is larger than the size allowed for attachments.")


class ImageTooLarge(AttachmentError):
    """The image has more pixels (or animation frames) than the server decodes."""

    code = "image_too_large"
    default_message = N_("This image has too many pixels to be processed; send a smaller one.")


class ImageProcessingFailed(AttachmentError):
    """The worker process decoding the image died before answering (a decoder crash, the
    kernel's out-of-memory killer): that upload fails, the server goes on."""

    code = "image_processing_failed"
    default_message = N_(
        "This image could not be processed: its decoding stopped unexpectedly. Send it again,"
        " or in another format (JPEG or PNG)."
    )


class AttachmentFileMissing(IntegrityError):
    """Server side: the encrypted file of an attachment is not on disk."""

    code = "attachment_missing"
    default_message = N_("The file of an attachment is missing from the server.")


class AttachmentNotFound(NotFoundError):
    """No such attachment for this user: unknown, discarded, or not visible to them.

    One answer for all of these, so that attachment ids cannot be probed.
    """

    code = "attachment_not_found"
    default_message = N_("This attachment does not exist or you may not see it.")


class AttachmentAlreadySent(ConflictError):
    """A message referred to an attachment that another message already carries."""

    code = "attachment_already_sent"
    default_message = N_("This attachment was already sent in a message; upload it again.")


class AttachmentExpired(ClientError):
    """An upload was referred to after it had waited too long for a message."""

    code = "attachment_expired"
    default_message = N_(
        "This upload waited too long to be sent and was discarded; upload it again."
    )


class AttachmentArchived(ClientError):
    """The attachment's message is older than the user's visible window (HTTP 410)."""

    code = "attachment_archived"
    default_message = N_("This attachment belongs to an archived message and is no longer served.")


class ThumbnailNotFound(NotFoundError):
    code = "thumbnail_not_found"
    default_message = N_("This attachment has no thumbnail.")
