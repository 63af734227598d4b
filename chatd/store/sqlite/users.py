"""User accounts on SQLite: creation, lookups, flags, passwords, and the directory key.

Profiles are sealed under the directory's data key (scope ``'directory'``), made with the
database and loaded at open (:meth:`SqliteUsers.open_directory`).  Changing or resetting a
password revokes login tokens in the same transaction (:mod:`.tokens`).  An administrator's
action (creating, disabling, enabling, resetting) is recorded in the audit log in the
transaction of the change (:mod:`.audit`).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import aiosqlite
import msgpack

from chatd.core.accounts import login_key, normalize_login
from chatd.core.audit import AdminAction
from chatd.core.errors import ConflictError, LoginTakenError, UserNotFound
from chatd.core.records import NewUser, User, UserProfile
from chatd.crypto.envelope import KeyScope, WrappedKey
from chatd.i18n import N_
from chatd.store.data_keys import DIRECTORY_SCOPE, PROFILE_DOMAIN, DataKeys
from chatd.store.sqlite.audit import append_admin_action_txn
from chatd.store.sqlite.context import SqliteContext
from chatd.store.sqlite.row_macs import USERS, columns, row_ok, update_rows_txn
from chatd.store.sqlite.tokens import revoke_other_tokens_txn, revoke_user_tokens_txn

USER_COLUMNS = (
    "id, login, password_hash, profile, disabled, terms_version, created_at,"
    " must_change_password, language"
)


async def ensure_directory_key_txn(conn: aiosqlite.Connection, keys: DataKeys, now: int) -> int:
    """Load the directory's newest live data key, making the first one if there is none;
    its version."""
    rows = list(
        await conn.execute_fetchall(
            "SELECT version, kek_id, wrapped FROM data_keys WHERE scope = ? AND scope_id = 0"
            " AND destroyed_at IS NULL ORDER BY version DESC LIMIT 1",
            (DIRECTORY_SCOPE,),
        )
    )
    if rows:
        version, kek_id, blob = rows[0]
        keys.load(KeyScope(DIRECTORY_SCOPE, 0, version), WrappedKey(kek_id, blob))
        return int(version)
    scope = KeyScope(DIRECTORY_SCOPE, 0, 1)
    wrapped = keys.create(scope)
    await conn.execute(
        "INSERT INTO data_keys (scope, scope_id, version, kek_id, wrapped, created_at)"
        " VALUES (?, 0, 1, ?, ?, ?)",
        (DIRECTORY_SCOPE, wrapped.kek_id, wrapped.blob, now),
    )
    return 1


async def _check_user_txn(conn: aiosqlite.Connection, user_id: int) -> None:
    rows = await conn.execute_fetchall("SELECT 1 FROM users WHERE id = ?", (user_id,))
    if not list(rows):
        raise UserNotFound(user=user_id)


class SqliteUsers:
    """The user half of :class:`~chatd.store.contract.AccountStore` on SQLite.

    Every write here touches users and tokens only, never what the writer's conversation
    cache holds, so every job keeps the cache (``keeps_conversation_cache=True``)."""

    def __init__(self, ctx: SqliteContext) -> None:
        self._ctx = ctx
        self._directory_version = 0

    async def open_directory(self) -> None:
        """Load (or make) the directory key; once, right after the context opened."""
        ctx = self._ctx
        self._directory_version = await ctx.write(
            "ensure_directory_key",
            lambda conn: ensure_directory_key_txn(conn, ctx.keys, ctx.clock_ms()),
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
        fields = msgpack.unpackb(sealer.open(0, "profile", profile))
        return User(
            user_id,
            login,
            password_hash,
            UserProfile(**fields),
            bool(disabled),
            terms_version,
            created_at,
            bool(must),
            lang,
        )

    async def create_user(self, new: NewUser, *, audit: AdminAction | None = None) -> User:
        login = normalize_login(new.login)
        ctx = self._ctx

        async def run(conn: aiosqlite.Connection) -> int:
            if list(await conn.execute_fetchall("SELECT 1 FROM users WHERE login = ?", (login,))):
                raise LoginTakenError()
            rows = list(await conn.execute_fetchall("SELECT COALESCE(MAX(id), 0) + 1 FROM users"))
            user_id = int(rows[0][0])
            sealer = ctx.keys.sealer(
                DIRECTORY_SCOPE, 0, self._directory_version, PROFILE_DOMAIN, user_id
            )
            profile = sealer.seal(0, "profile", msgpack.packb(dataclasses.asdict(new.profile)))
            mac = ctx.row_macs.mac(USERS, (user_id, login, new.password_hash, 0, 0))
            await conn.execute(
                "INSERT INTO users (id, login, password_hash, profile, created_at, language,"
                " mac) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (user_id, login, new.password_hash, profile, ctx.clock_ms(), new.language, mac),
            )
            if audit is not None:
                done = audit.with_target(str(user_id))
                await append_admin_action_txn(conn, ctx.keys, done, ctx.clock_ms())
            return user_id

        user_id = await ctx.write("create_user", run, keeps_conversation_cache=True)
        return await self.get_user(user_id)

    async def get_user(self, user_id: int) -> User:
        async with self._ctx.read("read_user") as conn:
            rows = list(
                await conn.execute_fetchall(
                    f"SELECT {USER_COLUMNS} FROM users WHERE id = ?",
                    (user_id,),
                )
            )
        if not rows:
            raise UserNotFound(user=user_id)
        return self._user(rows[0])

    async def find_user_by_login(self, login: str) -> User | None:
        """The account of ``login``, or None: also for an account whose row fails its MAC
        (a login must not rely on a password hash or a disabled flag someone edited)."""
        async with self._ctx.read("read_user_by_login") as conn:
            rows = list(
                await conn.execute_fetchall(
                    f"SELECT {USER_COLUMNS}, {columns(USERS)} FROM users WHERE login = ?",
                    (login_key(login),),
                )
            )
        if not rows:
            return None
        row = rows[0]
        fields, mac = row[9:-1], row[-1]
        if not row_ok(self._ctx.row_macs, USERS, fields, mac, f"user {row[0]}"):
            return None
        return self._user(row[:9])

    async def list_users(self) -> list[User]:
        async with self._ctx.read("read_users") as conn:
            rows = await conn.execute_fetchall(f"SELECT {USER_COLUMNS} FROM users ORDER BY id")
        return [self._user(r) for r in rows]

    async def _update_user(
        self,
        name: str,
        changes: dict[str, Any],
        user_id: int,
        audit: AdminAction | None = None,
    ) -> User:
        async def run(conn: aiosqlite.Connection) -> None:
            macs = self._ctx.row_macs
            if not await update_rows_txn(conn, macs, USERS, "id = ?", (user_id,), changes):
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
            "set_user_disabled",
            {"disabled": int(disabled)},
            user_id,
            audit,
        )

    async def set_user_language(self, user_id: int, language: str | None) -> User:
        return await self._update_user(
            "set_user_language",
            {"language": language},
            user_id,
        )

    async def set_terms_accepted(self, user_id: int, terms_version: str) -> User:
        return await self._update_user(
            "set_terms_accepted",
            {"terms_version": terms_version},
            user_id,
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
        async def run(conn: aiosqlite.Connection) -> list[bytes]:
            macs = self._ctx.row_macs
            changes = {
                "password_hash": password_hash,
                "must_change_password": 0,
                "password_changed_at": now_ms,
            }
            where = "id = ? AND password_hash = ?"
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
        async def run(conn: aiosqlite.Connection) -> int:
            macs = self._ctx.row_macs
            changes = {
                "password_hash": password_hash,
                "must_change_password": 1,
                "password_changed_at": now_ms,
            }
            if not await update_rows_txn(conn, macs, USERS, "id = ?", (user_id,), changes):
                raise UserNotFound(user=user_id)
            revoked = await revoke_user_tokens_txn(conn, macs, user_id, now_ms)
            if audit is not None:
                done = audit.with_target(str(user_id)).with_counts(sessions_closed=revoked)
                await append_admin_action_txn(conn, self._ctx.keys, done, now_ms)
            return revoked

        return await self._ctx.write("reset_password", run, keeps_conversation_cache=True)
