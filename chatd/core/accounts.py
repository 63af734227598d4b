"""Who a session is: :class:`Principal`, and :func:`check_session`, the rule that says whether
a token still opens one.  Pure (no store, no crypto, no asyncio), so that the gateway's
session state machine loads without them."""

from __future__ import annotations

from dataclasses import dataclass

from chatd.core.errors import (
    PasswordChangeRequiredError,
    TokenExpiredError,
    TokenRevokedError,
    UnauthenticatedError,
    UserDisabledError,
    ValidationError,
)
from chatd.core.records import SessionToken, User, UserProfile
from chatd.core.text import code_point, first_forbidden_in_name
from chatd.i18n import N_, Language

# The longest login and bearer token accepted: one rule, for the wire and the auth service.
MAX_LOGIN_CHARS = 64
MAX_TOKEN_CHARS = 128  # tokens are 43 characters; longer input is refused unread
MIN_LOGIN_CHARS = 2
LOGIN_PUNCTUATION = "._-@"


def login_key(login: str) -> str:
    """How logins compare, everywhere (the store's lookup, the login throttle): without the
    surrounding spaces, case-insensitively."""
    return login.strip().lower()


def normalize_login(raw: str) -> str:
    """The login a new account gets: :func:`login_key` of ``raw``, from 2 to 64 letters,
    digits or ``. _ - @``; else :class:`ValidationError`."""
    login = login_key(raw)
    if not MIN_LOGIN_CHARS <= len(login) <= MAX_LOGIN_CHARS or not all(
        ch.isalnum() or ch in LOGIN_PUNCTUATION for ch in login
    ):
        raise ValidationError(
            N_("A login is {min} to {max} letters, digits or . _ - @ characters."),
            field="login",
            min=MIN_LOGIN_CHARS,
            max=MAX_LOGIN_CHARS,
        )
    return login


# A profile field is shown inline, in lines built around it: see chatd.core.text for which
# characters it may not hold, and why.
PROFILE_INVISIBLE = N_(
    "The field {field} contains an invisible or direction-changing character ({char}),"
    " which is not allowed."
)


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated session: who, with which token, until when."""

    user_id: int
    login: str
    profile: UserProfile
    token_hash: bytes
    expires_at: int  # ms since the epoch
    terms_accepted: bool
    # The password is a one-time password set by an administrator: until the user chose a
    # new one only changing it (and logging out) is allowed (see :meth:`require_usable`).
    password_change_required: bool = False
    # The language the person chose for their account (None: not chosen).
    language: Language | None = None

    def require_usable(self) -> None:
        """Raise :class:`~chatd.core.errors.PasswordChangeRequiredError` while the password gate
        is closed (HTTP routes and WebSocket operations other than changing the password,
        logging out and ``ping``)."""
        if self.password_change_required:
            raise PasswordChangeRequiredError()


def check_session(token: SessionToken | None, user: User | None, now_ms: int) -> None:
    """Raise the :class:`~chatd.core.errors.AuthError` that applies, if any (pure)."""
    if token is None or user is None or token.user_id != user.id:
        raise UnauthenticatedError()
    # Disabled before revoked: disabling an account also revokes its tokens, and the person
    # must be told why they are out (4004, "your account is disabled"), not asked to log in.
    if user.disabled:
        raise UserDisabledError()
    if token.revoked_at is not None:
        raise TokenRevokedError()
    if now_ms >= token.expires_at:
        raise TokenExpiredError()


def check_account_fields(login: str, profile: UserProfile) -> None:
    """Raise a :class:`~chatd.core.errors.ValidationError` naming the first field of a new
    account (its login or a profile field) that holds a character no name may hold."""
    fields = {
        "login": login,
        "first_name": profile.first_name,
        "last_name": profile.last_name,
        "profession": profile.profession,
        "structure": profile.structure,
        "email": profile.email,
        "rpps": profile.rpps or "",
    }
    for field, value in fields.items():
        bad = first_forbidden_in_name(value)
        if bad is not None:
            raise ValidationError(PROFILE_INVISIBLE, field=field, char=code_point(bad))
