"""User accounts on PostgreSQL: creation, lookups, flags, passwords, and the directory key.

The twin of :mod:`chatd.store.sqlite.users`.  Profiles are sealed under the directory's data
key (scope ``'directory'``), made with the database and loaded at open
(:meth:`PostgresUsers.open_directory`).  Changing or resetting a password revokes login
tokens in the same transaction (:mod:`.tokens`).  An administrator's action is recorded in
the audit log in the transaction of the change (:mod:`.audit`).

**Several nodes at once.**

* The directory key: two nodes opening a fresh database at the same instant both find no
  key; the ``INSERT … ON CONFLICT DO NOTHING`` lets one win, and the other drops the key it
  made and loads the winner's (:func:`ensure_directory_key_txn`), so every node seals
  profiles under one key.
* A new account takes its id from the sequence ``user_ids`` (never ``MAX(id) + 1``, which two
  nodes would both compute), and the unique ``login`` decides which of two creations of one
  login wins: the insert is ``ON CONFLICT (login) DO NOTHING``, and the loser gets
  :class:`LoginTakenError` as it would have had it come second.
* Updates go through :func:`~.row_macs.update_rows_txn`, which locks the rows
  (``FOR UPDATE``) and re-reads them: a conditional change (the password a change expects)
  sees the other node's committed change and refuses.  The user's row is locked before its
  tokens (always this order; :mod:`.tokens` only ever locks tokens).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import msgpack

from chatd.core.accounts import login_key, normalize_login
from chatd.core.audit import AdminAction
from chatd.core.errors import ConflictError, LoginTakenError, UserNotFound
from chatd.core.records import NewUser, User, UserProfile
from chatd.crypto.envelope import KeyScope, WrappedKey
from chatd.crypto.row_macs import USERS
from chatd.i18n import N_
from chatd.store.data_keys import DIRECTORY_SCOPE, PROFILE_DOMAIN, DataKeys
from chatd.store.postgres.audit import append_admin_action_txn
from chatd.store.postgres.context import PostgresContext
from chatd.store.postgres.db import Connection
from chatd.store.postgres.row_macs import columns, row_ok, update_rows_txn
from chatd.store.postgres.tokens import revoke_other_tokens_txn, revoke_user_tokens_txn

USER_COLUMNS = (
    "id, login, password_hash, profile, disabled, terms_version, created_at,"
    " must_change_password, language"
)
_FIELDS = 9  # the columns of USER_COLUMNS


async def ensure_directory_key_txn(conn: Connection, keys: DataKeys, now: int) -> int:
    """Load the directory's newest live data key, making the first one if there is none;
    its version.  Another node making the first one at the same time wins or loses the
    insert; the loser forgets its own key and loads the winner's."""
    select = (
        "SELECT version, kek_id, wrapped FROM data_keys WHERE scope = $1 AND scope_id = 0"
        " AND destroyed_at IS NULL ORDER BY version DESC LIMIT 1"
    )
    row = await conn.fetchrow(select, DIRECTORY_SCOPE)
    if row is None:
        wrapped = keys.create(KeyScope(DIRECTORY_SCOPE, 0, 1))
        inserted = await conn.fetchval(
            "INSERT INTO data_keys (scope, scope_id, version, kek_id, wrapped, created_at)"
            " VALUES ($1, 0, 1, $2, $3, $4) ON CONFLICT DO NOTHING RETURNING version",
            DIRECTORY_SCOPE,
            wrapped.kek_id,
            wrapped.blob,
            now,
        )
        if inserted is not None:
            return 1
        keys.forget(DIRECTORY_SCOPE, 0)  # ours lost: the committed one is the key
        row = await conn.fetchrow(select, DIRECTORY_SCOPE)
        assert row is not None, "a directory key conflicted, then vanished"
    version, kek_id, blob = row
    keys.load(KeyScope(DIRECTORY_SCOPE, 0, int(version)), WrappedKey(str(kek_id), bytes(blob)))
    return int(version)


async def _check_user_txn(conn: Connection, user_id: int) -> None:
    if await conn.fetchval("SELECT 1 FROM users WHERE id = $1", user_id) is None:
        raise UserNotFound(user=user_id)


class PostgresUsers:
    """The user half of :class:`~chatd.store.contract.AccountStore` on PostgreSQL.

    Every write here touches users and tokens only, never what the writer's conversation
    cache holds, so every job keeps the cache (``keeps_conversation_cache=True``)."""

    def __init__(self, ctx: PostgresContext) -> None:
        self._ctx = ctx
        self._directory_version = 0

    async def open_directory(self) -> None:
        """Load (or make) the directory key; once, right after the context opened."""
        ctx = self._ctx
        self._directory_version = await ctx.write(
            "ensure_directory_key",
            lambda conn: ensure_directory_key_txn(conn, ctx.keys, ctx.clock_ms()),
            keeps_conversation_cache=True,
        )

    @property
    def directory_version(self) -> int:
        """The version of the directory's data key in use (after :meth:`open_directory`)."""
        return self._directory_version

    def _user(self, row: Any) -> User:
        user_id, login, password_hash, profile, disabled, terms_version, created_at, must, lang = (
            row
        )
        sealer = self._ctx.keys.sealer(
            DIRECTORY_SCOPE, 0, self._directory_version, PROFILE_DOMAIN, user_id
        )
        fields = msgpack.unpackb(sealer.open(0, "profile", bytes(profile)))
        return User(
            int(user_id),
            login,
            password_hash,
            UserProfile(**fields),
            bool(disabled),
            terms_version,
            int(created_at),
            bool(must),
            lang,
        )

    async def create_user(self, new: NewUser, *, audit: AdminAction | None = None) -> User:
        login = normalize_login(new.login)
        ctx = self._ctx

        async def run(conn: Connection) -> int:
            # Checked first so that a taken login does not use up an id (ids stay dense
            # unless two nodes race for one login); the insert below decides the race.
            if await conn.fetchval("SELECT 1 FROM users WHERE login = $1", login) is not None:
                raise LoginTakenError()
            user_id = int(await conn.fetchval("SELECT nextval('user_ids')"))
            sealer = ctx.keys.sealer(
                DIRECTORY_SCOPE, 0, self._directory_version, PROFILE_DOMAIN, user_id
            )
            profile = sealer.seal(0, "profile", msgpack.packb(dataclasses.asdict(new.profile)))
            mac = ctx.row_macs.mac(USERS, (user_id, login, new.password_hash, False, False))
            inserted = await conn.fetchval(
                "INSERT INTO users (id, login, password_hash, profile, created_at, language,"
                " mac) VALUES ($1, $2, $3, $4, $5, $6, $7)"
                " ON CONFLICT (login) DO NOTHING RETURNING id",
                user_id,
                login,
                new.password_hash,
                profile,
                ctx.clock_ms(),
                new.language,
                mac,
            )
            if inserted is None:
                raise LoginTakenError()
            if audit is not None:
                done = audit.with_target(str(user_id))
                await append_admin_action_txn(conn, ctx.keys, done, ctx.clock_ms())
            return user_id

        user_id = await ctx.write("create_user", run, keeps_conversation_cache=True)
        return await self.get_user(user_id)

    async def get_user(self, user_id: int) -> User:
        async with self._ctx.read("read_user") as conn:
            row = await conn.fetchrow(f"SELECT {USER_COLUMNS} FROM users WHERE id = $1", user_id)
        if row is None:
            raise UserNotFound(user=user_id)
        return self._user(row)

    async def find_user_by_login(self, login: str) -> User | None:
        """The account of ``login``, or None: also for an account whose row fails its MAC
        (a login must not rely on a password hash or a disabled flag someone edited)."""
        async with self._ctx.read("read_user_by_login") as conn:
            row = await conn.fetchrow(
                f"SELECT {USER_COLUMNS}, {columns(USERS)} FROM users WHERE login = $1",
                login_key(login),
            )
        if row is None:
            return None
        values = tuple(row)
        fields, mac = values[_FIELDS:-1], values[-1]
        if not row_ok(self._ctx.row_macs, USERS, fields, mac, f"user {values[0]}"):
            return None
        return self._user(values[:_FIELDS])

    async def list_users(self) -> list[User]:
        async with self._ctx.read("read_users") as conn:
            rows = await conn.fetch(f"SELECT {USER_COLUMNS} FROM users ORDER BY id")
        return [self._user(r) for r in rows]

    async def _update_user(
        self,
        name: str,
        changes: dict[str, Any],
        user_id: int,
        audit: AdminAction | None = None,
    ) -> User:
        async def run(conn: Connection) -> None:
            macs = self._ctx.row_macs
            if not await update_rows_txn(conn, macs, USERS, "id = $1", (user_id,), changes):
                raise UserNotFound(user=user_id)
            if audit is not None:
                done = audit.with_target(str(user_id))
                await append_admin_action_txn(conn, self._ctx.keys, done, self._ctx.clock_ms())

        await self._ctx.write(name, run, keeps_conversation_cache=True)
        return await self.get_user(user_id)

    async def set_user_disabled(
        self, user_id: int, disabled: bool, *, audit: AdminAction | None = None
    ) -> User:
        return await self._update_user(
            "set_user_disabled", {"disabled": bool(disabled)}, user_id, audit
        )

    async def set_user_language(self, user_id: int, language: str | None) -> User:
        return await self._update_user("set_user_language", {"language": language}, user_id)

    async def set_terms_accepted(self, user_id: int, terms_version: str) -> User:
        return await self._update_user(
            "set_terms_accepted", {"terms_version": terms_version}, user_id
        )

    async def change_password(
        self,
        user_id: int,
        password_hash: str,
        *,
        expected_hash: str,
        keep_token: bytes,
        now_ms: int,
    ) -> list[bytes]:
        async def run(conn: Connection) -> list[bytes]:
            macs = self._ctx.row_macs
            changes = {
                "password_hash": password_hash,
                "must_change_password": False,
                "password_changed_at": now_ms,
            }
            # The row lock re-reads the row: a change another node committed first makes
            # ``expected_hash`` stale, and this one is refused.
            where = "id = $1 AND password_hash = $2"
            if not await update_rows_txn(
                conn, macs, USERS, where, (user_id, expected_hash), changes
            ):
                await _check_user_txn(conn, user_id)
                raise ConflictError(N_("The password was changed meanwhile; log in again."))
            return await revoke_other_tokens_txn(conn, macs, user_id, keep_token, now_ms)

        return await self._ctx.write("change_password", run, keeps_conversation_cache=True)

    async def reset_password(
        self,
        user_id: int,
        password_hash: str,
        *,
        now_ms: int,
        audit: AdminAction | None = None,
    ) -> int:
        async def run(conn: Connection) -> int:
            macs = self._ctx.row_macs
            changes = {
                "password_hash": password_hash,
                "must_change_password": True,
                "password_changed_at": now_ms,
            }
            if not await update_rows_txn(conn, macs, USERS, "id = $1", (user_id,), changes):
                raise UserNotFound(user=user_id)
            revoked = await revoke_user_tokens_txn(conn, macs, user_id, now_ms)
            if audit is not None:
                done = audit.with_target(str(user_id)).with_counts(sessions_closed=revoked)
                await append_admin_action_txn(conn, self._ctx.keys, done, now_ms)
            return revoked

        return await self._ctx.write("reset_password", run, keeps_conversation_cache=True)
