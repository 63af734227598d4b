"""Login sessions: password check, opaque tokens kept only hashed, expiry, logout, terms gate.

A login verifies the password with Argon2id in a worker thread and returns an opaque random
token (256 bits, URL-safe base64).  The store keeps only the token's SHA-256 digest, so a copy
of the database does not let anyone log in.  A token is valid ``CHATD_SESSION_HOURS`` (8 h) and
until a logout revokes it.  Until the user accepted the current terms of use
(``CHATD_TERMS_VERSION``) every operation but the acceptance answers ``terms_not_accepted``.

Every password check — a login, and the current password of a password change — is admitted
first by the login throttle (:mod:`chatd.core.login_throttle`, its state in the store's
:class:`~chatd.store.contract.LoginAttempts`): the attempt counts from the moment it starts,
per login, per client address and for the whole service, so a parallel burst cannot get more
guesses through than a sequential one.  The pure parts — token generation and digest,
:func:`check_session`, the throttle's rule — are separate from :class:`AuthService`, which
only adds the store and the clock.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Protocol

from chatd.broker.base import Broker, EndSessions, SessionEnd
from chatd.core.accounts import (
    MAX_LOGIN_CHARS,
    MAX_TOKEN_CHARS,
    Principal,
    check_session,
    login_key,
)
from chatd.core.clock import Clock, wall_clock_ms
from chatd.core.errors import (
    InvalidCredentialsError,
    RateLimitedError,
    TermsVersionError,
    UnauthenticatedError,
    UserDisabledError,
    ValidationError,
)
from chatd.core.login_throttle import Budget, ThrottleLimits
from chatd.core.password_policy import MAX_PASSWORD_BYTES, check_password
from chatd.core.records import SessionToken, User
from chatd.crypto.passwords import hash_password, verify_password
from chatd.i18n import N_, Language, language
from chatd.store.contract import AccountStore, LoginAttempts

log = logging.getLogger("chatd.auth")
# What is logged of a login: the account's id, never what was typed (a password typed into
# the login field is a login as typed), nor a password or a token.

TOKEN_BYTES = 32
MS_PER_HOUR = 3_600_000
TOKEN_PURGE_AFTER_MS = 24 * MS_PER_HOUR  # expired tokens are kept a day, then deleted
HASHING_CONCURRENCY = 2  # Argon2id costs ~19 MiB and tens of ms of CPU each


def new_token() -> str:
    """An opaque random token (43 URL-safe characters)."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def token_digest(token: str) -> bytes:
    """What the store keeps of a token: its SHA-256."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


@dataclass(slots=True)
class _Attempt:
    succeeded: bool = False


@dataclass(frozen=True, slots=True)
class LoginResult:
    token: str  # given to the client once, never stored
    principal: Principal
    terms_version: str


def check_credentials_shape(login: object, password: object) -> tuple[str, str]:
    if not isinstance(login, str) or not 1 <= len(login) <= MAX_LOGIN_CHARS or not _encodes(login):
        raise ValidationError(
            N_("A login has from 1 to {max} characters."), field="login", max=MAX_LOGIN_CHARS
        )
    return login, _password_field(password, "password")


def _encodes(text: str) -> bool:
    """False for text that is not Unicode scalar values (a lone surrogate from a JSON
    escape): the database and the hash would fail on it, as a 500."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _password_field(value: object, field: str) -> str:
    try:
        size = len(value.encode()) if isinstance(value, str) else 0
    except UnicodeEncodeError:  # a lone surrogate, from a JSON escape
        size = 0
    if not 1 <= size <= MAX_PASSWORD_BYTES:
        raise ValidationError(
            N_("A password has from 1 to {max} bytes."), field=field, max=MAX_PASSWORD_BYTES
        )
    assert isinstance(value, str)
    return value


THROTTLED = {
    Budget.LOGIN: N_("Too many failed logins; wait a minute and retry."),
    Budget.ADDRESS: N_("Too many failed logins from your network; wait a minute and retry."),
    Budget.GLOBAL: N_("The service is receiving too many failed logins; wait a minute and retry."),
}


def throttle_key(login: str) -> str:
    """The login an attempt counts against: as the store compares logins."""
    return login_key(login)


class AuthStore(AccountStore, LoginAttempts, Protocol):
    """What the auth service needs of the store: accounts, tokens and the login throttle."""


class AuthService:
    def __init__(
        self,
        store: AuthStore,
        broker: Broker,
        *,
        session_hours: int,
        terms_version: str,
        login_limits: ThrottleLimits | None = None,
        clock_ms: Clock = wall_clock_ms,
    ) -> None:
        self._store = store
        self._broker = broker
        self._session_ms = session_hours * MS_PER_HOUR
        self.terms_version = terms_version
        self._clock_ms = clock_ms
        self._limits = login_limits or ThrottleLimits()
        self._hashing = asyncio.Semaphore(HASHING_CONCURRENCY)
        self._dummy_hash: str | None = None

    def principal(self, user: User, token_hash: bytes, expires_at: int) -> Principal:
        return Principal(
            user.id,
            user.login,
            user.profile,
            token_hash,
            expires_at,
            user.terms_version == self.terms_version,
            user.must_change_password,
            language(user.language),
        )

    async def login(
        self, login: object, password: object, *, address: str, device: str | None = None
    ) -> LoginResult:
        """Check the password of ``login`` and open a session.  ``address`` is the client's
        (the gateway's :mod:`~chatd.gateway.client_address`): it has a budget of its own.
        ``device``: the family of the client (:func:`chatd.core.devices.device_family`)."""
        login_name, secret = check_credentials_shape(login, password)
        async with self._password_attempt(throttle_key(login_name), address) as attempt:
            user = await self._store.find_user_by_login(login_name)
            async with self._hashing:
                if user is None:
                    # Same work as for a real account, so that logins cannot be probed by
                    # timing.
                    if self._dummy_hash is None:
                        self._dummy_hash = await asyncio.to_thread(hash_password, new_token())
                    await asyncio.to_thread(verify_password, secret, self._dummy_hash)
                    ok = False
                else:
                    ok = await asyncio.to_thread(verify_password, secret, user.password_hash)
            if user is None or not ok:
                who = "no such account" if user is None else f"user {user.id}"
                log.debug("login failed: %s", who)
                raise InvalidCredentialsError()
            attempt.succeeded = True
        log.debug("login: user %d", user.id)
        # The hash checked goes with the token: a reset or a change of the password while
        # Argon2 ran must not leave this login's token behind its revocation.
        return await self.start_session(user, device, checked_hash=user.password_hash)

    @asynccontextmanager
    async def _password_attempt(self, key: str, address: str) -> AsyncIterator[_Attempt]:
        """Admit one password check, or raise :class:`RateLimitedError`; the body checks the
        password and sets ``succeeded``.  The attempt counts from now on, and still counts
        if the body fails or is cancelled (a vanished client keeps its guess)."""
        admission = await self._store.begin_login_attempt(
            key, address, self._limits, self._clock_ms()
        )
        if admission.attempt is None:
            assert admission.refused_by is not None
            log.debug("password attempt refused: %s budget spent", admission.refused_by.value)
            raise RateLimitedError(THROTTLED[admission.refused_by])
        attempt = _Attempt()
        try:
            yield attempt
        finally:
            await self._store.end_login_attempt(
                admission.attempt, succeeded=attempt.succeeded, now_ms=self._clock_ms()
            )

    async def start_session(
        self, user: User, device: str | None = None, *, checked_hash: str | None = None
    ) -> LoginResult:
        """A new session for ``user``, whose credentials were checked (a login, or an
        operator's tool that seeds accounts: the benchmarks, the chaos harness).
        ``checked_hash``: the password hash a login verified (see
        :meth:`~chatd.store.contract.AccountStore.create_session_token`)."""
        if user.disabled:
            raise UserDisabledError()
        token = new_token()
        now = self._clock_ms()
        record = SessionToken(
            token_digest(token), user.id, now, now + self._session_ms, device=device
        )
        await self._store.create_session_token(record, password_hash=checked_hash)
        return LoginResult(
            token, self.principal(user, record.token_hash, record.expires_at), self.terms_version
        )

    async def authenticate(self, token: object) -> Principal:
        """The session of a token, or the AuthError that explains why there is none."""
        if not isinstance(token, str) or not 1 <= len(token) <= MAX_TOKEN_CHARS:
            raise UnauthenticatedError()
        return await self.revalidate(token_digest(token))

    async def revalidate(self, token_hash: bytes) -> Principal:
        record = await self._store.find_session_token(token_hash)
        user = None
        if record is not None:
            user = await self._store.get_user(record.user_id)
        check_session(record, user, self._clock_ms())
        assert record is not None and user is not None
        return self.principal(user, token_hash, record.expires_at)

    async def logout(self, token: object) -> bool:
        """Revoke the token and close its live connections; False if it was not live."""
        principal = await self.authenticate(token)
        revoked = await self._store.revoke_session_token(principal.token_hash, self._clock_ms())
        self._broker.publish(EndSessions(SessionEnd.LOGGED_OUT, (principal.token_hash,)))
        return revoked

    async def purge_expired_tokens(self) -> int:
        """Delete the tokens expired for more than a day; how many."""
        return await self._store.purge_session_tokens(self._clock_ms() - TOKEN_PURGE_AFTER_MS)

    async def invalid_tokens(self, token_hashes: list[bytes]) -> set[bytes]:
        """Which of these tokens no longer open a session (revoked, expired, account
        disabled): one read for all of a node's live sessions."""
        return await self._store.invalid_session_tokens(token_hashes, self._clock_ms())

    async def change_password(
        self, principal: Principal, old_password: object, new_password: object, *, address: str
    ) -> tuple[Principal, int]:
        """The user replaces their password: the old one is checked with Argon2id in a worker
        thread (it is a password attempt like a login's, in the same budgets, so this cannot
        be used to guess), the new one against
        :func:`chatd.core.password_policy.check_password`.  Every other token of the user is
        revoked and its live connections closed (4003); this session stays valid and leaves
        the password gate.  Returns the session and how many other sessions were revoked."""
        old = _password_field(old_password, "old_password")
        new = _password_field(new_password, "new_password")
        async with self._password_attempt(throttle_key(principal.login), address) as attempt:
            user = await self._store.get_user(principal.user_id)
            async with self._hashing:
                ok = await asyncio.to_thread(verify_password, old, user.password_hash)
            if not ok:
                raise InvalidCredentialsError(N_("The current password is wrong."))
            attempt.succeeded = True
        names = (user.profile.first_name, user.profile.last_name)
        check_password(new, login=user.login, names=names, current=old)
        async with self._hashing:
            new_hash = await asyncio.to_thread(hash_password, new)
        revoked = await self._store.change_password(
            user.id,
            new_hash,
            expected_hash=user.password_hash,
            keep_token=principal.token_hash,
            now_ms=self._clock_ms(),
        )
        if revoked:
            self._broker.publish(EndSessions(SessionEnd.LOGGED_OUT, tuple(revoked)))
        return dataclasses.replace(principal, password_change_required=False), len(revoked)

    async def set_language(self, principal: Principal, chosen: Language | None) -> Principal:
        """The person chose the language of their account (None: follow their client)."""
        user = await self._store.set_user_language(principal.user_id, chosen)
        return self.principal(user, principal.token_hash, principal.expires_at)

    async def accept_terms(self, principal: Principal, version: object) -> Principal:
        if not isinstance(version, str) or version != self.terms_version:
            raise TermsVersionError(current=self.terms_version)
        user = await self._store.set_terms_accepted(principal.user_id, version)
        return self.principal(user, principal.token_hash, principal.expires_at)
