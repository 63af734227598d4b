"""The single writer: group commit of conversation operations (design §3).

Why one writer task: SQLite has one write lock per database, so concurrent writers would only
queue on it; doing the queueing ourselves lets us *batch*.  Every operation that arrives while
a commit is in flight waits in ``_queue``; the writer then takes them all (up to ``max_batch``),
decides each with the pure conversation rules against its cached state, seals and chains the
resulting events, and writes the whole batch in one transaction named ``append_batch`` with a
handful of ``executemany`` calls.  Each caller's future is resolved only after COMMIT returned,
i.e. after the WAL was fsynced (``synchronous=FULL``): ack means durable.

The cache of conversation state (last seq, last hash, members, sealers) is an optimisation,
never the truth: at the start of every batch, under the write lock, the writer compares each
touched conversation's ``last_seq``/``shredded_at`` with the database and reloads what
differs, so another process (``chatd retention run``) cannot make it append from a stale seq.
If a batch fails, the whole cache is dropped, because the in-memory state ran ahead of a
commit that did not happen.

Operations that fail a rule fail alone: their futures get the error, nothing of theirs is
written, and the rest of the batch commits.  Non-conversation writes (users, key rotation,
shredding) are *exclusive jobs*: they run in their own named transaction, in queue order.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import aiosqlite
import msgpack

from chatd.conversations import (
    ConversationState,
    CreateConversation,
    Operation,
    apply_membership,
    decide,
    referenced_users,
)
from chatd.crypto.chain import GENESIS, link_hash
from chatd.crypto.envelope import KeyScope, Sealer, WrappedKey
from chatd.errors import ChatdError, StoreClosedError, UnavailableError
from chatd.events import Event, EventKind
from chatd.store.data_keys import (
    CONV_SCOPE,
    CONV_STATE_DOMAIN,
    EVENTS_DOMAIN,
    DataKeys,
)
from chatd.store.records import AppendResult
from chatd.store.sqlite_db import transaction

log = logging.getLogger("chatd.store.writer")
T = TypeVar("T")
IdemKey = tuple[int, int, str]  # (scope_conv, sender, client_msg_id)


@dataclass(slots=True)
class _Conv:
    """Cached state of one conversation, as of the last commit (or within the open batch)."""

    state: ConversationState
    last_seq: int
    last_hash: bytes
    last_message_seq: int
    events: Sealer | None  # None once shredded
    names: Sealer | None


@dataclass(slots=True)
class _OpRequest:
    op: Operation
    future: asyncio.Future[AppendResult]


@dataclass(slots=True)
class _Job:
    name: str
    run: Callable[[aiosqlite.Connection], Awaitable[Any]]
    future: asyncio.Future[Any]


@dataclass(slots=True)
class _Batch:
    """Rows collected while deciding a batch, written with executemany at the end."""

    events: list[tuple[int, int, str, int, int, bytes, bytes, bytes]] = field(default_factory=list)
    idem: list[tuple[int, int, str, int, int, int]] = field(default_factory=list)
    new_convs: dict[int, int] = field(default_factory=dict)  # conv -> created_at
    touched: dict[int, tuple[int, bytes | None]] = field(default_factory=dict)  # conv -> ts, name
    data_keys: list[tuple[str, int, int, str, bytes, int]] = field(default_factory=list)
    closes: list[tuple[int, int, int]] = field(default_factory=list)  # left_seq, conv, user
    new_open: dict[tuple[int, int], int] = field(default_factory=dict)  # (conv, user) -> joined
    new_closed: list[tuple[int, int, int, int]] = field(default_factory=list)
    results: list[tuple[_OpRequest, AppendResult | ChatdError]] = field(default_factory=list)
    keys: dict[IdemKey, tuple[int, int, int]] = field(default_factory=dict)


_STOP = object()


class GroupCommitWriter:
    def __init__(
        self,
        conn: aiosqlite.Connection,
        data_keys: DataKeys,
        *,
        max_batch: int,
        clock_ms: Callable[[], int],
        cache_size: int = 10_000,
    ) -> None:
        self._conn = conn
        self._keys = data_keys
        self._max_batch = max_batch
        self._clock_ms = clock_ms
        self._cache_size = cache_size
        self._convs: dict[int, _Conv] = {}
        self._queue: asyncio.Queue[_OpRequest | _Job | object] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.batches = 0  # for benchmarks: how many group commits ran

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="chatd-writer")

    async def stop(self) -> None:
        """Let every queued write finish, then stop."""
        if self._task is None or self._closing:
            return
        self._closing = True
        self._queue.put_nowait(_STOP)
        await self._task

    async def apply(self, op: Operation) -> AppendResult:
        if self._closing or self._task is None:
            raise StoreClosedError()
        future: asyncio.Future[AppendResult] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_OpRequest(op, future))
        return await future

    async def run_exclusive(
        self, name: str, run: Callable[[aiosqlite.Connection], Awaitable[T]]
    ) -> T:
        """Run ``run(conn)`` inside its own transaction ``name``, in queue order."""
        if self._closing or self._task is None:
            raise StoreClosedError()
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Job(name, run, future))
        return await future

    def forget_cache(self) -> None:
        self._convs.clear()

    # ------------------------------------------------------------------ loop

    async def _run(self) -> None:
        stopping = False
        while not stopping:
            item = await self._queue.get()
            pending: list[_OpRequest | _Job | object] = [item]
            while len(pending) < self._max_batch:
                try:
                    pending.append(self._queue.get_nowait())
                except asyncio.QueueEmpty:
                    break
            ops: list[_OpRequest] = []
            for entry in pending:
                if isinstance(entry, _OpRequest):
                    ops.append(entry)
                    continue
                # A job or the stop marker: first commit the operations queued before it.
                await self._commit_ops(ops)
                ops = []
                if isinstance(entry, _Job):
                    await self._run_job(entry)
                else:
                    stopping = True
            await self._commit_ops(ops)

    async def _run_job(self, job: _Job) -> None:
        try:
            async with transaction(self._conn, job.name):
                result = await job.run(self._conn)
        except Exception as exc:
            self._convs.clear()
            _settle(job.future, exc)
        else:
            self._convs.clear()  # jobs may shred or re-key: reload state lazily
            if not job.future.done():
                job.future.set_result(result)

    async def _commit_ops(self, ops: list[_OpRequest]) -> None:
        if not ops:
            return
        batch = _Batch()
        try:
            async with transaction(self._conn, "append_batch"):
                await self._decide_batch_txn(ops, batch)
                await self._write_batch_txn(batch)
        except Exception as exc:
            self._convs.clear()
            if isinstance(exc, ChatdError):
                error: ChatdError = exc
            else:
                log.exception("append_batch failed (%d operations)", len(ops))
                error = UnavailableError("The message could not be stored; retry.")
            for request in ops:
                _settle(request.future, error)
            return
        self.batches += 1
        for request, outcome in batch.results:
            if request.future.done():  # the caller was cancelled; the write stands
                continue
            if isinstance(outcome, ChatdError):
                request.future.set_exception(outcome)
            else:
                request.future.set_result(outcome)
        if len(self._convs) > self._cache_size:
            for conv_id in list(self._convs)[: len(self._convs) - self._cache_size]:
                del self._convs[conv_id]

    # ------------------------------------------------------------------ deciding

    async def _decide_batch_txn(self, ops: list[_OpRequest], batch: _Batch) -> None:
        conn = self._conn
        now = self._clock_ms()
        known = await self._known_keys_txn([r.op for r in ops])
        await self._refresh_convs_txn({r.op.conv_id for r in ops if r.op.conv_id})
        wanted = {u for r in ops for u in referenced_users(r.op)}
        active: set[int] = set()
        if wanted:
            marks = ",".join("?" * len(wanted))
            rows = await conn.execute_fetchall(
                f"SELECT id FROM users WHERE disabled = 0 AND id IN ({marks})",
                tuple(wanted),
            )
            active = {int(r[0]) for r in rows}
        next_conv_id = 0
        if any(isinstance(r.op, CreateConversation) for r in ops):
            rows = await conn.execute_fetchall("SELECT COALESCE(MAX(id), 0) FROM conversations")
            next_conv_id = int(next(iter(rows))[0]) + 1

        for request in ops:
            op = request.op
            key: IdemKey = (op.conv_id, op.sender, op.client_msg_id)
            seen = batch.keys.get(key) or known.get(key)
            if seen is not None:
                conv_id, first, last = seen
                batch.results.append((request, AppendResult(conv_id, first, last, True, ())))
                continue
            conv = self._convs.get(op.conv_id) if op.conv_id else None
            try:
                drafts = decide(conv.state if conv else None, op, active)
            except ChatdError as exc:
                batch.results.append((request, exc))
                continue
            if isinstance(op, CreateConversation):
                conv = self._new_conv_txn(next_conv_id, now, batch)
                next_conv_id += 1
            assert conv is not None and conv.events is not None
            conv_id = conv.state.conv_id
            events = []
            for draft in drafts:
                events.append(
                    self._append_event(conv, draft.kind, draft.sender, draft.payload, now, batch)
                )
            first, last = events[0].seq, events[-1].seq
            batch.keys[key] = (conv_id, first, last)
            batch.idem.append((op.conv_id, op.sender, op.client_msg_id, conv_id, first, last))
            batch.results.append(
                (request, AppendResult(conv_id, first, last, False, tuple(events)))
            )

    def _new_conv_txn(self, conv_id: int, now: int, batch: _Batch) -> _Conv:
        scope = KeyScope(CONV_SCOPE, conv_id, 1)
        wrapped = self._keys.create(scope)
        batch.data_keys.append((CONV_SCOPE, conv_id, 1, wrapped.kek_id, wrapped.blob, now))
        batch.new_convs[conv_id] = now
        conv = _Conv(
            state=ConversationState(conv_id),
            last_seq=0,
            last_hash=GENESIS,
            last_message_seq=0,
            events=self._keys.sealer(CONV_SCOPE, conv_id, 1, EVENTS_DOMAIN, conv_id),
            names=self._keys.sealer(CONV_SCOPE, conv_id, 1, CONV_STATE_DOMAIN, conv_id),
        )
        self._convs[conv_id] = conv
        return conv

    def _append_event(
        self,
        conv: _Conv,
        kind: EventKind,
        sender: int,
        payload: dict[str, Any],
        now: int,
        batch: _Batch,
    ) -> Event:
        assert conv.events is not None and conv.names is not None
        conv_id = conv.state.conv_id
        seq = conv.last_seq + 1
        ciphertext = conv.events.seal(seq, kind, msgpack.packb(payload))
        digest = link_hash(conv.last_hash, conv_id, seq, kind, ciphertext)
        batch.events.append((conv_id, seq, kind, sender, now, ciphertext, conv.last_hash, digest))
        conv.last_seq, conv.last_hash = seq, digest
        name: bytes | None = batch.touched.get(conv_id, (now, None))[1]
        if kind is EventKind.MESSAGE:
            conv.last_message_seq = seq
        elif kind is EventKind.CREATED or kind is EventKind.RENAMED:
            name = conv.names.seal(0, "name", msgpack.packb(payload["name"]))
        elif kind is EventKind.JOINED:
            batch.new_open[(conv_id, payload["user"])] = seq
        elif kind is EventKind.LEFT:
            user = payload["user"]
            joined = batch.new_open.pop((conv_id, user), None)
            if joined is None:
                batch.closes.append((seq + 1, conv_id, user))
            else:
                batch.new_closed.append((conv_id, user, joined, seq + 1))
        if kind is EventKind.CREATED:
            for user in payload["members"]:
                batch.new_open[(conv_id, user)] = seq
        batch.touched[conv_id] = (now, name)
        conv.state = apply_membership(conv.state, kind, payload)
        return Event(conv_id, seq, kind, sender, now, payload)

    # ------------------------------------------------------------------ loading

    async def _known_keys_txn(self, ops: list[Operation]) -> dict[IdemKey, tuple[int, int, int]]:
        keys = list({(op.conv_id, op.sender, op.client_msg_id) for op in ops})
        found: dict[IdemKey, tuple[int, int, int]] = {}
        for start in range(0, len(keys), 300):  # stay under SQLite's variable limit
            chunk = keys[start : start + 300]
            values = ",".join("(?,?,?)" for _ in chunk)
            # A join from the literal keys, not ``IN (VALUES …)``, which SQLite plans as a
            # scan of the whole table (quadratic over the life of the database).
            rows = await self._conn.execute_fetchall(
                f"WITH k(c, s, m) AS (VALUES {values})"
                " SELECT i.scope_conv, i.sender, i.client_msg_id, i.conv_id, i.first_seq,"
                " i.last_seq FROM k JOIN idempotency_keys i"
                " ON i.scope_conv = k.c AND i.sender = k.s AND i.client_msg_id = k.m",
                [v for key in chunk for v in key],
            )
            for r in rows:
                found[(int(r[0]), int(r[1]), str(r[2]))] = (int(r[3]), int(r[4]), int(r[5]))
        return found

    async def _refresh_convs_txn(self, conv_ids: set[int]) -> None:
        """Make the cache agree with the database for ``conv_ids`` (we hold the lock)."""
        if not conv_ids:
            return
        marks = ",".join("?" * len(conv_ids))
        rows = await self._conn.execute_fetchall(
            f"SELECT id, last_seq, last_hash, last_message_seq, shredded_at FROM conversations"
            f" WHERE id IN ({marks})",
            tuple(conv_ids),
        )
        stale: dict[int, tuple[int, bytes, int, bool]] = {}
        for conv_id, last_seq, last_hash, last_message_seq, shredded_at in rows:
            cached = self._convs.get(conv_id)
            shredded = shredded_at is not None
            if cached is None or cached.last_seq != last_seq or cached.state.shredded != shredded:
                stale[conv_id] = (last_seq, last_hash, last_message_seq, shredded)
        for conv_id in conv_ids - {int(r[0]) for r in rows}:
            self._convs.pop(conv_id, None)
        if not stale:
            return
        marks = ",".join("?" * len(stale))
        members: dict[int, set[int]] = {c: set() for c in stale}
        ever: dict[int, set[int]] = {c: set() for c in stale}
        for conv_id, user_id, left_seq in await self._conn.execute_fetchall(
            f"SELECT conv_id, user_id, left_seq FROM memberships WHERE conv_id IN ({marks})",
            tuple(stale),
        ):
            ever[conv_id].add(user_id)
            if left_seq is None:
                members[conv_id].add(user_id)
        wrapped = {
            int(r[0]): (int(r[1]), str(r[2]), bytes(r[3]))
            for r in await self._conn.execute_fetchall(
                f"SELECT scope_id, version, kek_id, wrapped FROM data_keys"
                f" WHERE scope = '{CONV_SCOPE}' AND destroyed_at IS NULL AND scope_id IN ({marks})"
                " ORDER BY version",
                tuple(stale),
            )
        }
        for conv_id, (last_seq, last_hash, last_message_seq, shredded) in stale.items():
            state = ConversationState(
                conv_id, frozenset(members[conv_id]), frozenset(ever[conv_id]), shredded
            )
            events = names = None
            if not shredded and conv_id in wrapped:
                version, kek_id, blob = wrapped[conv_id]
                self._keys.load(KeyScope(CONV_SCOPE, conv_id, version), WrappedKey(kek_id, blob))
                events = self._keys.sealer(CONV_SCOPE, conv_id, version, EVENTS_DOMAIN, conv_id)
                names = self._keys.sealer(CONV_SCOPE, conv_id, version, CONV_STATE_DOMAIN, conv_id)
            elif not shredded:
                state = ConversationState(conv_id, state.members, state.ever_members, True)
            self._convs[conv_id] = _Conv(
                state, last_seq, bytes(last_hash), last_message_seq, events, names
            )

    # ------------------------------------------------------------------ writing

    async def _write_batch_txn(self, batch: _Batch) -> None:
        conn = self._conn
        if batch.data_keys:
            await conn.executemany(
                "INSERT INTO data_keys (scope, scope_id, version, kek_id, wrapped, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                batch.data_keys,
            )
        if batch.new_convs:
            rows = []
            for conv_id, created_at in batch.new_convs.items():
                conv = self._convs[conv_id]
                name = batch.touched[conv_id][1]
                rows.append(
                    (
                        conv_id,
                        created_at,
                        conv.last_seq,
                        conv.last_hash,
                        batch.touched[conv_id][0],
                        conv.last_message_seq,
                        name,
                    )
                )
            await conn.executemany(
                "INSERT INTO conversations (id, created_at, last_seq, last_hash, last_event_at,"
                " last_message_seq, name) VALUES (?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
        updates = []
        for conv_id, (ts, name) in batch.touched.items():
            if conv_id in batch.new_convs:
                continue
            conv = self._convs[conv_id]
            updates.append(
                (conv.last_seq, conv.last_hash, ts, conv.last_message_seq, name, conv_id)
            )
        if updates:
            await conn.executemany(
                "UPDATE conversations SET last_seq = ?, last_hash = ?, last_event_at = ?,"
                " last_message_seq = ?, name = COALESCE(?, name) WHERE id = ?",
                updates,
            )
        if batch.events:
            await conn.executemany(
                "INSERT INTO events (conv_id, seq, kind, sender, ts, ciphertext, prev_hash, hash)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                batch.events,
            )
        if batch.closes:
            await conn.executemany(
                "UPDATE memberships SET left_seq = ? WHERE conv_id = ? AND user_id = ?"
                " AND left_seq IS NULL",
                batch.closes,
            )
        intervals = batch.new_closed + [(c, u, j, None) for (c, u), j in batch.new_open.items()]
        if intervals:
            await conn.executemany(
                "INSERT INTO memberships (conv_id, user_id, joined_seq, left_seq)"
                " VALUES (?, ?, ?, ?)",
                intervals,
            )
        if batch.idem:
            await conn.executemany(
                "INSERT INTO idempotency_keys (scope_conv, sender, client_msg_id, conv_id,"
                " first_seq, last_seq) VALUES (?, ?, ?, ?, ?, ?)",
                batch.idem,
            )


def _settle(future: asyncio.Future[Any], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000
