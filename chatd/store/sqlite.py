"""The aiosqlite implementation of the store contract.

Writes go through the single :class:`~chatd.store.writer.GroupCommitWriter`; reads use a small
pool of read connections (WAL lets them read while the writer commits), each read in one named
read transaction so its queries see one snapshot.

Visibility is part of every read query: :data:`VISIBLE` is the membership-interval predicate
each read path embeds, so no caller can forget it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiosqlite
import msgpack

from chatd.attachments.blobstore import BlobStore
from chatd.core.conversations import Operation
from chatd.core.errors import (
    ConflictError,
    ConversationNotFound,
    ConversationShreddedError,
    LoginTakenError,
    StoreClosedError,
    UserNotFound,
    ValidationError,
)
from chatd.core.events import Event
from chatd.core.records import (
    AppendResult,
    AttachmentAccess,
    AttachmentInfo,
    ConversationHead,
    EventPage,
    InboxRow,
    Interval,
    NewAttachment,
    NewUser,
    ReadState,
    SessionToken,
    User,
    UserProfile,
    VerifyReport,
)
from chatd.crypto.envelope import (
    KeyScope,
    Sealer,
    WrappedKey,
    event_binding,
    sealed_key_version,
)
from chatd.crypto.keyring import KeyRing
from chatd.i18n import N_
from chatd.store import sqlite_attachments, sqlite_sessions, sqlite_verify
from chatd.store.abstract import Store
from chatd.store.data_keys import (
    CONV_SCOPE,
    DIRECTORY_SCOPE,
    EVENTS_DOMAIN,
    PROFILE_DOMAIN,
    DataKeys,
)
from chatd.store.sqlite_db import connect, migrate, transaction
from chatd.store.writer import GroupCommitWriter, wall_clock_ms

log = logging.getLogger("chatd.store")

VISIBLE = (
    "EXISTS (SELECT 1 FROM memberships m WHERE m.conv_id = e.conv_id AND m.user_id = :user"
    " AND e.seq >= m.joined_seq AND (m.left_seq IS NULL OR e.seq < m.left_seq))"
)
EVENT_COLUMNS = "e.conv_id, e.seq, e.kind, e.sender, e.ts, e.ciphertext"
_USER_COLUMNS = (
    "id, login, password_hash, profile, disabled, terms_version, created_at,"
    " must_change_password, language"
)
# How many system events a window read returns beyond the window's messages, at most.
WINDOW_EXTRA_EVENTS = 1000


class SqliteStore(Store):
    def __init__(
        self,
        path: Path,
        ring: KeyRing,
        *,
        visible_window: int = 200,
        synchronous: str = "FULL",
        max_batch: int = 512,
        readers: int = 2,
        clock_ms: Callable[[], int] = wall_clock_ms,
        attachments_dir: Path | None = None,
    ) -> None:
        self.path = path
        # The attachment files live next to the database unless told otherwise, so that every
        # process opening this database (server, admin commands) finds the same files.
        self.blobs = BlobStore(attachments_dir or path.parent / "attachments")
        self.window_size = visible_window
        self._synchronous = synchronous
        self._max_batch = max_batch
        self._reader_count = readers
        self._clock_ms = clock_ms
        self._keys = DataKeys(ring)
        self._writer_conn: aiosqlite.Connection | None = None
        self._writer: GroupCommitWriter | None = None
        self._plan_conn: aiosqlite.Connection | None = None
        self._readers: asyncio.Queue[aiosqlite.Connection] = asyncio.Queue()
        self._all_readers: list[aiosqlite.Connection] = []
        self._directory_version = 0

    @property
    def writer(self) -> GroupCommitWriter:
        if self._writer is None:
            raise StoreClosedError()
        return self._writer

    # ----------------------------------------------------------------- lifecycle

    async def open(self) -> None:
        self._writer_conn = await connect(self.path, synchronous=self._synchronous)
        await migrate(self._writer_conn)
        for _ in range(self._reader_count):
            reader = await connect(self.path, synchronous=self._synchronous)
            self._all_readers.append(reader)
            self._readers.put_nowait(reader)
        # The writer's own read connection: planning reads must not queue behind the
        # in-flight batch on the write connection, nor wait for a pooled reader.
        self._plan_conn = await connect(self.path, synchronous=self._synchronous)
        self._writer = GroupCommitWriter(
            self._writer_conn,
            self._plan_conn,
            self._keys,
            max_batch=self._max_batch,
            clock_ms=self._clock_ms,
        )
        self._writer.start()
        self._directory_version = await self._writer.run_exclusive(
            "ensure_directory_key", self._ensure_directory_key_txn
        )

    async def close(self) -> None:
        if self._writer is not None:
            await self._writer.stop()
            self._writer = None
        for reader in self._all_readers:
            await reader.close()
        self._all_readers.clear()
        if self._plan_conn is not None:
            await self._plan_conn.close()
            self._plan_conn = None
        if self._writer_conn is not None:
            await self._writer_conn.close()
            self._writer_conn = None

    @asynccontextmanager
    async def _read(self, name: str) -> AsyncIterator[aiosqlite.Connection]:
        if not self._all_readers:
            raise StoreClosedError()
        conn = await self._readers.get()
        try:
            async with transaction(conn, name, write=False):
                yield conn
        finally:
            self._readers.put_nowait(conn)

    # ----------------------------------------------------------------- keys

    async def _ensure_directory_key_txn(self, conn: aiosqlite.Connection) -> int:
        rows = list(
            await conn.execute_fetchall(
                "SELECT version, kek_id, wrapped FROM data_keys WHERE scope = ? AND scope_id = 0"
                " AND destroyed_at IS NULL ORDER BY version DESC LIMIT 1",
                (DIRECTORY_SCOPE,),
            )
        )
        if rows:
            version, kek_id, blob = rows[0]
            self._keys.load(KeyScope(DIRECTORY_SCOPE, 0, version), WrappedKey(kek_id, blob))
            return int(version)
        scope = KeyScope(DIRECTORY_SCOPE, 0, 1)
        wrapped = self._keys.create(scope)
        await conn.execute(
            "INSERT INTO data_keys (scope, scope_id, version, kek_id, wrapped, created_at)"
            " VALUES (?, 0, 1, ?, ?, ?)",
            (DIRECTORY_SCOPE, wrapped.kek_id, wrapped.blob, self._clock_ms()),
        )
        return 1

    async def _load_conv_key_txn(
        self, conn: aiosqlite.Connection, conv_id: int, version: int
    ) -> None:
        if self._keys.knows(CONV_SCOPE, conv_id, version):
            return
        rows = list(
            await conn.execute_fetchall(
                "SELECT kek_id, wrapped FROM data_keys WHERE scope = ? AND scope_id = ?"
                " AND version = ?",
                (CONV_SCOPE, conv_id, version),
            )
        )
        if not rows or rows[0][1] is None:
            raise ConversationShreddedError(conv=conv_id)
        self._keys.load(KeyScope(CONV_SCOPE, conv_id, version), WrappedKey(rows[0][0], rows[0][1]))

    async def _open_events_txn(
        self, conn: aiosqlite.Connection, rows: Iterable[Any]
    ) -> list[Event]:
        rows = list(rows)
        # Shredding is checked in this read's snapshot, never inferred from the key cache: a
        # read whose snapshot predates a shred may have re-cached the data key after the shred
        # forgot it, and ``chatd retention run`` shreds from another process.
        conv_ids = sorted({int(r[0]) for r in rows})
        if conv_ids:
            marks = ",".join("?" * len(conv_ids))
            shredded = [
                int(r[0])
                for r in await conn.execute_fetchall(
                    f"SELECT id FROM conversations WHERE id IN ({marks})"
                    " AND shredded_at IS NOT NULL",
                    conv_ids,
                )
            ]
            if shredded:
                for conv_id in shredded:
                    self._keys.forget(CONV_SCOPE, conv_id)
                raise ConversationShreddedError(conv=shredded[0])
        events = []
        sealers: dict[tuple[int, int], Sealer] = {}  # a page has one or two keys at most
        for conv_id, seq, kind, sender, ts, ciphertext in rows:
            version = sealed_key_version(ciphertext)
            sealer = sealers.get((conv_id, version))
            if sealer is None:
                if not self._keys.knows(CONV_SCOPE, conv_id, version):
                    await self._load_conv_key_txn(conn, conv_id, version)
                sealer = self._keys.sealer(CONV_SCOPE, conv_id, version, EVENTS_DOMAIN, conv_id)
                sealers[(conv_id, version)] = sealer
            opened = sealer.open(seq, kind, ciphertext, event_binding(sender, ts))
            events.append(Event(conv_id, seq, kind, sender, ts, msgpack.unpackb(opened)))
        return events

    async def rewrap_data_keys(self, ring: KeyRing) -> int:
        async def run(conn: aiosqlite.Connection) -> int:
            self._keys.replace_ring(ring)
            rows = await conn.execute_fetchall(
                "SELECT scope, scope_id, version, kek_id, wrapped FROM data_keys"
                " WHERE destroyed_at IS NULL"
            )
            updates = []
            for scope, scope_id, version, kek_id, blob in rows:
                new = self._keys.rewrap(
                    WrappedKey(kek_id, blob), KeyScope(scope, scope_id, version)
                )
                updates.append((new.kek_id, new.blob, scope, scope_id, version))
            await conn.executemany(
                "UPDATE data_keys SET kek_id = ?, wrapped = ? WHERE scope = ? AND scope_id = ?"
                " AND version = ?",
                updates,
            )
            return len(updates)

        return await self.writer.run_exclusive("rewrap_data_keys", run)

    async def kek_ids_in_use(self) -> set[str]:
        async with self._read("read_kek_ids") as conn:
            rows = await conn.execute_fetchall(
                "SELECT DISTINCT kek_id FROM data_keys WHERE destroyed_at IS NULL"
            )
        return {str(r[0]) for r in rows}

    # ----------------------------------------------------------------- users

    def _user(self, row: Any) -> User:
        user_id, login, password_hash, profile, disabled, terms_version, created_at, must, lang = (
            row
        )
        sealer = self._keys.sealer(
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

    async def create_user(self, new: NewUser) -> User:
        login = normalize_login(new.login)

        async def run(conn: aiosqlite.Connection) -> int:
            if list(await conn.execute_fetchall("SELECT 1 FROM users WHERE login = ?", (login,))):
                raise LoginTakenError()
            rows = list(await conn.execute_fetchall("SELECT COALESCE(MAX(id), 0) + 1 FROM users"))
            user_id = int(rows[0][0])
            sealer = self._keys.sealer(
                DIRECTORY_SCOPE, 0, self._directory_version, PROFILE_DOMAIN, user_id
            )
            profile = sealer.seal(0, "profile", msgpack.packb(dataclasses.asdict(new.profile)))
            await conn.execute(
                "INSERT INTO users (id, login, password_hash, profile, created_at, language)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (user_id, login, new.password_hash, profile, self._clock_ms(), new.language),
            )
            return user_id

        user_id = await self.writer.run_exclusive("create_user", run, keeps_conversation_cache=True)
        return await self.get_user(user_id)

    async def get_user(self, user_id: int) -> User:
        async with self._read("read_user") as conn:
            rows = list(
                await conn.execute_fetchall(
                    f"SELECT {_USER_COLUMNS} FROM users WHERE id = ?",
                    (user_id,),
                )
            )
        if not rows:
            raise UserNotFound(user=user_id)
        return self._user(rows[0])

    async def find_user_by_login(self, login: str) -> User | None:
        async with self._read("read_user_by_login") as conn:
            rows = list(
                await conn.execute_fetchall(
                    f"SELECT {_USER_COLUMNS} FROM users WHERE login = ?",
                    (login.strip().lower(),),
                )
            )
        return self._user(rows[0]) if rows else None

    async def list_users(self) -> list[User]:
        async with self._read("read_users") as conn:
            rows = await conn.execute_fetchall(f"SELECT {_USER_COLUMNS} FROM users ORDER BY id")
        return [self._user(r) for r in rows]

    async def _update_user(
        self, name: str, sql: str, params: tuple[Any, ...], user_id: int
    ) -> User:
        async def run(conn: aiosqlite.Connection) -> None:
            cursor = await conn.execute(sql, params)
            if cursor.rowcount != 1:
                raise UserNotFound(user=user_id)

        await self.writer.run_exclusive(name, run, keeps_conversation_cache=True)
        return await self.get_user(user_id)

    async def set_user_disabled(self, user_id: int, disabled: bool) -> User:
        return await self._update_user(
            "set_user_disabled",
            "UPDATE users SET disabled = ? WHERE id = ?",
            (int(disabled), user_id),
            user_id,
        )

    async def set_user_language(self, user_id: int, language: str | None) -> User:
        return await self._update_user(
            "set_user_language",
            "UPDATE users SET language = ? WHERE id = ?",
            (language, user_id),
            user_id,
        )

    async def set_terms_accepted(self, user_id: int, terms_version: str) -> User:
        return await self._update_user(
            "set_terms_accepted",
            "UPDATE users SET terms_version = ? WHERE id = ?",
            (terms_version, user_id),
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
            cursor = await conn.execute(
                "UPDATE users SET password_hash = ?, must_change_password = 0,"
                " password_changed_at = ? WHERE id = ? AND password_hash = ?",
                (password_hash, now_ms, user_id, expected_hash),
            )
            if cursor.rowcount != 1:
                await self._check_user_txn(conn, user_id)
                raise ConflictError(N_("The password was changed meanwhile; log in again."))
            return await sqlite_sessions.revoke_other_tokens_txn(conn, user_id, keep_token, now_ms)

        return await self.writer.run_exclusive(
            "change_password", run, keeps_conversation_cache=True
        )

    async def reset_password(self, user_id: int, password_hash: str, *, now_ms: int) -> int:
        async def run(conn: aiosqlite.Connection) -> int:
            cursor = await conn.execute(
                "UPDATE users SET password_hash = ?, must_change_password = 1,"
                " password_changed_at = ? WHERE id = ?",
                (password_hash, now_ms, user_id),
            )
            if cursor.rowcount != 1:
                raise UserNotFound(user=user_id)
            return await sqlite_sessions.revoke_user_tokens_txn(conn, user_id, now_ms)

        return await self.writer.run_exclusive("reset_password", run, keeps_conversation_cache=True)

    async def _check_user_txn(self, conn: aiosqlite.Connection, user_id: int) -> None:
        rows = await conn.execute_fetchall("SELECT 1 FROM users WHERE id = ?", (user_id,))
        if not list(rows):
            raise UserNotFound(user=user_id)

    # ----------------------------------------------------------------- conversations

    async def apply(self, op: Operation) -> AppendResult:
        return await self.writer.apply(op)

    async def current_members(self, conv_id: int) -> frozenset[int]:
        async with self._read("read_members") as conn:
            rows = await conn.execute_fetchall(
                "SELECT user_id FROM memberships WHERE conv_id = ? AND left_seq IS NULL",
                (conv_id,),
            )
        return frozenset(int(r[0]) for r in rows)

    async def intervals(self, user_id: int, conv_id: int) -> tuple[Interval, ...]:
        async with self._read("read_intervals") as conn:
            rows = await conn.execute_fetchall(
                "SELECT joined_seq, left_seq FROM memberships WHERE conv_id = ? AND user_id = ?"
                " ORDER BY joined_seq",
                (conv_id, user_id),
            )
        return tuple(Interval(int(j), None if left is None else int(left)) for j, left in rows)

    async def _window_start_txn(
        self, conn: aiosqlite.Connection, user_id: int, conv_id: int
    ) -> tuple[int, bool]:
        """(first seq of the user's window, whether older visible events are archived).

        The window starts right after the user's (W+1)-th most recent visible message, so it
        holds W messages and every system event after the last archived message; with W or
        fewer messages it starts at the user's first visible event and nothing is archived.
        """
        params = {"user": user_id, "conv": conv_id, "skip": self.window_size}
        bounds = list(
            await conn.execute_fetchall(
                "SELECT MIN(joined_seq), MAX(COALESCE(left_seq, 9223372036854775807))"
                " FROM memberships WHERE conv_id = :conv AND user_id = :user",
                params,
            )
        )
        low, high = bounds[0]
        if low is None:
            raise ConversationNotFound(conv=conv_id)
        rows = list(
            await conn.execute_fetchall(
                "SELECT e.seq FROM events e WHERE e.conv_id = :conv AND e.kind = 'message'"
                f" AND e.seq >= :low AND e.seq < :high AND {VISIBLE}"
                " ORDER BY e.seq DESC LIMIT 1 OFFSET :skip",
                {**params, "low": low, "high": high},
            )
        )
        if rows:
            return int(rows[0][0]) + 1, True
        return int(low), False

    async def _page_txn(
        self,
        conn: aiosqlite.Connection,
        user_id: int,
        conv_id: int,
        where: str,
        params: dict[str, Any],
        limit: int,
        newest_first: bool,
    ) -> tuple[list[Event], bool]:
        order = "DESC" if newest_first else "ASC"
        rows = list(
            await conn.execute_fetchall(
                f"SELECT {EVENT_COLUMNS} FROM events e WHERE e.conv_id = :conv AND {where}"
                f" AND {VISIBLE} ORDER BY e.seq {order} LIMIT :limit",
                {**params, "user": user_id, "conv": conv_id, "limit": limit + 1},
            )
        )
        has_more = len(rows) > limit
        rows = rows[:limit]
        if newest_first:
            rows.reverse()
        return await self._open_events_txn(conn, rows), has_more

    async def visible_window(self, user_id: int, conv_id: int) -> EventPage:
        async with self._read("read_window") as conn:
            start, archived = await self._window_start_txn(conn, user_id, conv_id)
            events, has_more = await self._page_txn(
                conn,
                user_id,
                conv_id,
                "e.seq >= :start",
                {"start": start},
                self.window_size + WINDOW_EXTRA_EVENTS,
                newest_first=True,
            )
        return EventPage(conv_id, tuple(events), archived, has_more, start)

    async def events_after(
        self, user_id: int, conv_id: int, after_seq: int, limit: int
    ) -> EventPage:
        _check_limit(limit)
        async with self._read("read_events_after") as conn:
            start, _ = await self._window_start_txn(conn, user_id, conv_id)
            archived = False
            if after_seq < start - 1:
                skipped = list(
                    await conn.execute_fetchall(
                        f"SELECT 1 FROM events e WHERE e.conv_id = :conv AND e.seq > :after"
                        f" AND e.seq < :start AND {VISIBLE} LIMIT 1",
                        {"conv": conv_id, "user": user_id, "after": after_seq, "start": start},
                    )
                )
                archived = bool(skipped)
            events, has_more = await self._page_txn(
                conn,
                user_id,
                conv_id,
                "e.seq >= :from",
                {"from": max(after_seq + 1, start)},
                limit,
                newest_first=False,
            )
        return EventPage(conv_id, tuple(events), archived, has_more, start)

    async def events_before(
        self, user_id: int, conv_id: int, before_seq: int, limit: int
    ) -> EventPage:
        _check_limit(limit)
        async with self._read("read_events_before") as conn:
            start, archived_exist = await self._window_start_txn(conn, user_id, conv_id)
            events, has_more = await self._page_txn(
                conn,
                user_id,
                conv_id,
                "e.seq >= :start AND e.seq < :before",
                {"start": start, "before": before_seq},
                limit,
                newest_first=True,
            )
        return EventPage(conv_id, tuple(events), archived_exist and not has_more, has_more, start)

    async def conversation_heads(self, user_id: int) -> list[ConversationHead]:
        async with self._read("read_conversation_heads") as conn:
            rows = await conn.execute_fetchall(
                "WITH latest AS ("
                "  SELECT m.conv_id, m.left_seq IS NULL AS is_member,"
                "    CASE WHEN m.left_seq IS NULL THEN c.last_seq ELSE m.left_seq - 1 END AS top"
                "  FROM memberships m JOIN conversations c ON c.id = m.conv_id"
                "  WHERE m.user_id = :user AND m.joined_seq = (SELECT MAX(m2.joined_seq)"
                "    FROM memberships m2 WHERE m2.conv_id = m.conv_id AND m2.user_id = :user))"
                f" SELECT latest.is_member, {EVENT_COLUMNS} FROM latest"
                " JOIN events e ON e.conv_id = latest.conv_id AND e.seq = latest.top"
                f" WHERE {VISIBLE} ORDER BY e.ts DESC, e.conv_id DESC",
                {"user": user_id},
            )
            heads = []
            for is_member, *event_row in rows:
                try:
                    opened: Event | None = (await self._open_events_txn(conn, [event_row]))[0]
                except ConversationShreddedError:
                    opened = None
                heads.append(ConversationHead(event_row[0], bool(is_member), opened, event_row[1]))
        return heads

    # ----------------------------------------------------------------- retention, verify

    async def expired_conversations(self, last_event_before_ms: int) -> list[int]:
        async with self._read("read_expired_conversations") as conn:
            rows = await conn.execute_fetchall(
                "SELECT id FROM conversations WHERE shredded_at IS NULL AND last_event_at < ?"
                " ORDER BY id",
                (last_event_before_ms,),
            )
        return [int(r[0]) for r in rows]

    async def shred_conversation(self, conv_id: int) -> None:
        async def run(conn: aiosqlite.Connection) -> list[int]:
            now = self._clock_ms()
            cursor = await conn.execute(
                "UPDATE conversations SET shredded_at = ? WHERE id = ? AND shredded_at IS NULL",
                (now, conv_id),
            )
            if cursor.rowcount != 1:
                exists = list(
                    await conn.execute_fetchall(
                        "SELECT 1 FROM conversations WHERE id = ?", (conv_id,)
                    )
                )
                if not exists:
                    raise ConversationNotFound(conv=conv_id)
            await conn.execute(
                "UPDATE data_keys SET wrapped = NULL, kek_id = NULL, destroyed_at = ?"
                " WHERE scope = ? AND scope_id = ? AND destroyed_at IS NULL",
                (now, CONV_SCOPE, conv_id),
            )
            self._keys.forget(CONV_SCOPE, conv_id)
            return await sqlite_attachments.shred_txn(conn, conv_id, now)

        attachment_ids = await self.writer.run_exclusive("shred_conversation", run)
        # Their keys are gone: the files are noise now (verify sweeps any left by a crash).
        await asyncio.to_thread(sqlite_attachments.delete_files, self.blobs, attachment_ids)

    async def verify(self, conv_ids: Sequence[int] | None = None) -> VerifyReport:
        async with self._read("verify_chains") as conn:
            report = await sqlite_verify.verify_chains_txn(conn, self._keys, conv_ids)
        if conv_ids is not None:
            return report
        async with self._read("verify_attachments") as conn:
            audit = await sqlite_attachments.verify_attachments_txn(
                conn, self._keys.ring, self.blobs
            )
        if audit.missing:
            # A file removed after the snapshot with its row (discarded) or key (shredded) by
            # a server running meanwhile is not a problem: keep only what still stands.
            async with self._read("verify_attachments_recheck") as conn:
                await sqlite_attachments.still_live_txn(conn, audit)
        warnings = await asyncio.to_thread(
            sqlite_attachments.sweep_orphans, self.blobs, audit.known_ids, audit.dead_files
        )
        for warning in warnings:
            log.warning("verify: %s", warning)
        return dataclasses.replace(
            report,
            problems=report.problems + tuple(audit.problems),
            attachments=audit.checked,
            warnings=report.warnings + tuple(warnings),
        )

    # ---- sessions, read markers (gateway)

    async def create_session_token(self, token: SessionToken) -> None:
        await self.writer.run_exclusive(
            "create_session_token",
            lambda conn: sqlite_sessions.insert_token_txn(conn, token),
            keeps_conversation_cache=True,
        )

    async def find_session_token(self, token_hash: bytes) -> SessionToken | None:
        async with self._read("read_session_token") as conn:
            return await sqlite_sessions.find_token_txn(conn, token_hash)

    async def revoke_session_token(self, token_hash: bytes, revoked_at: int) -> bool:
        return await self.writer.run_exclusive(
            "revoke_session_token",
            lambda conn: sqlite_sessions.revoke_token_txn(conn, token_hash, revoked_at),
            keeps_conversation_cache=True,
        )

    async def revoke_user_tokens(self, user_id: int, revoked_at: int) -> int:
        return await self.writer.run_exclusive(
            "revoke_user_tokens",
            lambda conn: sqlite_sessions.revoke_user_tokens_txn(conn, user_id, revoked_at),
            keeps_conversation_cache=True,
        )

    async def invalid_session_tokens(
        self, token_hashes: Sequence[bytes], now_ms: int
    ) -> set[bytes]:
        async with self._read("read_invalid_tokens") as conn:
            return await sqlite_sessions.invalid_tokens_txn(conn, list(token_hashes), now_ms)

    async def purge_session_tokens(self, expired_before: int) -> int:
        return await self.writer.run_exclusive(
            "purge_session_tokens",
            lambda conn: sqlite_sessions.purge_tokens_txn(conn, expired_before),
            keeps_conversation_cache=True,
        )

    async def audience(
        self, conv_id: int, first_seq: int, last_seq: int
    ) -> dict[int, frozenset[int]]:
        async with self._read("read_audience") as conn:
            return await sqlite_sessions.audience_txn(conn, conv_id, first_seq, last_seq)

    async def mark_read(self, user_id: int, conv_id: int, seq: int) -> ReadState:
        return await self.writer.run_exclusive(
            "mark_read",
            lambda conn: sqlite_sessions.mark_read_txn(
                conn,
                user_id,
                conv_id,
                seq,
                now=self._clock_ms(),
                cap=self.window_size,
                visible=VISIBLE,
            ),
            keeps_conversation_cache=True,
        )

    async def inbox(self, user_id: int) -> list[InboxRow]:
        async with self._read("read_inbox") as conn:
            return await sqlite_sessions.inbox_txn(
                conn,
                user_id,
                cap=self.window_size,
                visible=VISIBLE,
                event_columns=EVENT_COLUMNS,
                open_events=self._open_events_txn,
            )

    # ---- attachments

    async def record_attachment(self, new: NewAttachment) -> AttachmentInfo:
        return await self.writer.run_exclusive(
            "record_attachment",
            lambda conn: sqlite_attachments.insert_attachment_txn(
                conn, self._keys.ring, new, self._clock_ms()
            ),
            keeps_conversation_cache=True,  # an upload touches no conversation
        )

    async def attachment_for_user(
        self, user_id: int, attachment_id: int, *, thumbnail: bool = False
    ) -> AttachmentAccess:
        async with self._read("read_attachment") as conn:
            return await sqlite_attachments.find_for_user_txn(
                conn,
                self._keys.ring,
                user_id,
                attachment_id,
                self._clock_ms(),
                visible=VISIBLE,
                window_start=self._window_start_txn,
                thumbnail=thumbnail,
            )

    async def expired_attachments(self, now_ms: int, limit: int = 1000) -> list[int]:
        async with self._read("read_expired_attachments") as conn:
            return await sqlite_attachments.expired_txn(conn, now_ms, limit)

    async def discard_attachments(self, attachment_ids: Sequence[int], now_ms: int) -> list[int]:
        gone = await self.writer.run_exclusive(
            "discard_attachments",
            lambda conn: sqlite_attachments.discard_txn(conn, attachment_ids, now_ms),
            keeps_conversation_cache=True,  # only unsent uploads: no conversation changes
        )
        await asyncio.to_thread(sqlite_attachments.delete_files, self.blobs, gone)
        return gone


def _check_limit(limit: int) -> None:
    if not 1 <= limit <= 1000:
        raise ValidationError(
            N_("The number of items asked for must be from {min} to {max}."),
            field="limit",
            min=1,
            max=1000,
        )


def normalize_login(raw: str) -> str:
    login = raw.strip().lower()
    if not 2 <= len(login) <= 64 or not all(ch.isalnum() or ch in "._-@" for ch in login):
        raise ValidationError(
            N_("A login is {min} to {max} letters, digits or . _ - @ characters."),
            field="login",
            min=2,
            max=64,
        )
    return login
