"""Account administration: create, list, disable and enable, reset a password.

What an operator does with ``chatd user …`` and, later, an administration screen.  The rules
that go with it live here rather than in a command: disabling an account revokes every one of
its tokens and ends its live sessions; a password reset revokes the tokens too and puts the
account behind the password gate (only ``ping`` until a new password is chosen).

Sessions end through the broker (:class:`~chatd.broker.base.EndSessions`), so that every node
closes its sockets at once.  In a process that runs no server (the admin command) nobody
hears the publication: the server's revocation sweep then closes them within a second, from
the revoked tokens in the store.

Every change here names who made it (``by``, an :class:`~chatd.core.audit.Actor`) and is
recorded in the administrators' audit log in the change's own transaction: an account is
never created, disabled, enabled or reset without its record, nor recorded without its
change.  The record holds the account's id, never its login or a password.
"""

from __future__ import annotations

import asyncio

from chatd.broker.base import Broker, EndSessions, SessionEnd
from chatd.core.accounts import check_account_fields
from chatd.core.audit import ActionKind, Actor, AdminAction
from chatd.core.clock import Clock, wall_clock_ms
from chatd.core.password_policy import one_time_password
from chatd.core.records import NewUser, User
from chatd.crypto.passwords import hash_password
from chatd.store.contract import AccountStore


class AccountAdmin:
    def __init__(
        self, store: AccountStore, broker: Broker, clock_ms: Clock = wall_clock_ms
    ) -> None:
        self._store = store
        self._broker = broker
        self._clock_ms = clock_ms

    async def create(self, new: NewUser, *, by: Actor) -> User:
        """``new.password_hash`` is already an Argon2id hash (see :meth:`hash_password`).
        A login or profile field holding an invisible or direction-changing character is
        refused (:func:`~chatd.core.accounts.check_account_fields`)."""
        check_account_fields(new.login, new.profile)
        return await self._store.create_user(new, audit=AdminAction(by, ActionKind.USER_CREATED))

    @staticmethod
    async def hash_password(password: str) -> str:
        """Argon2id in a worker thread (tens of milliseconds of CPU)."""
        return await asyncio.to_thread(hash_password, password)

    async def find(self, login: str) -> User | None:
        return await self._store.find_user_by_login(login)

    async def list(self) -> list[User]:
        return await self._store.list_users()

    async def set_disabled(self, user: User, disabled: bool, *, by: Actor) -> User:
        """Disable (every token revoked, every live session closed with 4004) or enable."""
        kind = ActionKind.USER_DISABLED if disabled else ActionKind.USER_ENABLED
        changed = await self._store.set_user_disabled(
            user.id, disabled, audit=AdminAction(by, kind)
        )
        if disabled:
            await self._store.revoke_user_tokens(user.id, self._clock_ms())
            self._broker.publish(EndSessions(SessionEnd.USER_DISABLED, user_id=user.id))
        return changed

    async def reset_password(self, user: User, *, by: Actor) -> tuple[str, int]:
        """A one-time password for the account (shown once to the operator, never stored in
        clear), and how many of its sessions were revoked."""
        password = one_time_password()
        password_hash = await self.hash_password(password)
        revoked = await self._store.reset_password(
            user.id,
            password_hash,
            now_ms=self._clock_ms(),
            audit=AdminAction(by, ActionKind.PASSWORD_RESET),
        )
        self._broker.publish(EndSessions(SessionEnd.LOGGED_OUT, user_id=user.id))
        return password, revoked
