"""Deciding and writing one group-commit batch of conversation operations.

:class:`BatchPlanner` turns a list of operations into the rows of one transaction, in memory:
it decides each operation with the pure rules against its cached conversation state, gives the
resulting events their seqs, seals and chains them.  The ``*_txn`` functions are the SQL around
it: what the planner needs to read first, and the ``executemany`` calls that write a plan.

The cache (:class:`ConvCache` per conversation) is what makes batching cheap: the writer is the
only code that appends, so after the first load a conversation's last seq, last hash, members
and sealers are known without a query.  It stays right because:

* it is updated only by plans, and dropped entirely when a plan fails to commit;
* it is dropped after every exclusive job (shredding, re-keying);
* the one change another process may make — shredding by ``chatd retention run`` — is refused
  at the database level by the ``events_refuse_shredded`` trigger, which fails
  the batch, drops the cache and makes the next attempt reload the shredded state.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Set
from dataclasses import dataclass, field
from typing import Any

import aiosqlite
import msgpack

from chatd.core.conversations import (
    ConversationState,
    CreateConversation,
    Operation,
    apply_membership,
    decide,
)
from chatd.core.errors import ChatdError
from chatd.core.events import Event, EventKind
from chatd.core.records import AppendResult
from chatd.crypto.chain import GENESIS, link_hash
from chatd.crypto.envelope import KeyScope, Sealer, WrappedKey, event_binding
from chatd.store.data_keys import CONV_SCOPE, CONV_STATE_DOMAIN, EVENTS_DOMAIN, DataKeys
from chatd.store.sqlite_attachments import (
    Claimable,
    attach_to_drafts,
    note_claims,
    write_claims_txn,
)

IdemKey = tuple[int, int, str]  # (scope_conv, sender, client_msg_id); scope 0 = creations
IdemValue = tuple[int, int, int]  # (conv_id, first_seq, last_seq)
EventRow = tuple[int, int, str, int, int, bytes, bytes, bytes]
_pack = msgpack.Packer().pack  # one packer reused: packb() builds a new one per call
_MAX_VARIABLES = 900  # below SQLite's default limit of 999 bound parameters per statement


@dataclass(slots=True)
class ConvCache:
    """A conversation's state as of the last plan (committed, or in flight)."""

    state: ConversationState
    last_seq: int
    last_hash: bytes
    last_message_seq: int
    events: Sealer | None  # None once shredded
    names: Sealer | None


@dataclass(slots=True)
class Plan:
    """The rows of one batch, and each operation's outcome once they commit."""

    events: list[EventRow] = field(default_factory=list)
    idem: list[tuple[int, int, str, int, int, int]] = field(default_factory=list)
    keys: dict[IdemKey, IdemValue] = field(default_factory=dict)
    new_convs: dict[int, int] = field(default_factory=dict)  # conv -> created_at
    touched: dict[int, tuple[int, bytes | None]] = field(default_factory=dict)  # ts, sealed name
    data_keys: list[tuple[str, int, int, str, bytes, int]] = field(default_factory=list)
    closes: list[tuple[int, int, int]] = field(default_factory=list)  # left_seq, conv, user
    new_open: dict[tuple[int, int], int] = field(default_factory=dict)  # (conv, user) -> joined
    new_closed: list[tuple[int, int, int, int]] = field(default_factory=list)
    outcomes: list[AppendResult | ChatdError] = field(default_factory=list)
    # Final state of each touched conversation, captured when the plan is complete.
    heads: dict[int, tuple[int, bytes, int]] = field(default_factory=dict)
    claims: dict[int, tuple[int, int]] = field(default_factory=dict)  # attachment -> conv, seq


class BatchPlanner:
    def __init__(self, data_keys: DataKeys, cache_size: int) -> None:
        self._keys = data_keys
        self._cache_size = cache_size
        self.convs: dict[int, ConvCache] = {}
        self.next_conv_id = 0  # 0 = not loaded yet
        self.generation = 0  # bumped by every reset: a plan made before one is void

    @property
    def keys(self) -> DataKeys:
        return self._keys

    def reset(self, failed_new_convs: Iterable[int] = ()) -> None:
        """Forget everything: a plan built on this state did not commit."""
        for conv_id in failed_new_convs:
            self._keys.forget(CONV_SCOPE, conv_id)
        self.convs.clear()
        self.next_conv_id = 0
        self.generation += 1

    def missing(self, ops: Iterable[Operation]) -> set[int]:
        return {op.conv_id for op in ops if op.conv_id and op.conv_id not in self.convs}

    def evict(self, keep: Set[int]) -> None:
        excess = len(self.convs) - self._cache_size
        if excess > 0:
            for conv_id in [c for c in self.convs if c not in keep][:excess]:
                del self.convs[conv_id]

    def plan(
        self,
        ops: list[Operation],
        known: dict[IdemKey, IdemValue],
        active_users: Set[int],
        now: int,
        attachments: Mapping[int, Claimable] | None = None,
    ) -> Plan:
        plan = Plan()
        for op in ops:
            key: IdemKey = (op.conv_id, op.sender, op.client_msg_id)
            seen = plan.keys.get(key) or known.get(key)
            if seen is not None:
                plan.outcomes.append(AppendResult(seen[0], seen[1], seen[2], True, ()))
                continue
            conv = self.convs.get(op.conv_id) if op.conv_id else None
            try:
                drafts = decide(conv.state if conv else None, op, active_users)
                drafts = attach_to_drafts(drafts, op.sender, attachments or {}, plan.claims, now)
            except ChatdError as exc:
                plan.outcomes.append(exc)
                continue
            if isinstance(op, CreateConversation):
                conv = self._new_conv(now, plan)
            assert conv is not None
            events = tuple(
                [self._append(conv, d.kind, d.sender, d.payload, now, plan) for d in drafts]
            )
            note_claims(events, plan.claims)
            conv_id, first, last = conv.state.conv_id, events[0].seq, events[-1].seq
            plan.keys[key] = (conv_id, first, last)
            plan.idem.append((op.conv_id, op.sender, op.client_msg_id, conv_id, first, last))
            plan.outcomes.append(AppendResult(conv_id, first, last, False, events))
        for conv_id in plan.touched:
            c = self.convs[conv_id]
            plan.heads[conv_id] = (c.last_seq, c.last_hash, c.last_message_seq)
        return plan

    def _new_conv(self, now: int, plan: Plan) -> ConvCache:
        conv_id = self.next_conv_id
        self.next_conv_id += 1
        scope = KeyScope(CONV_SCOPE, conv_id, 1)
        self._keys.forget(CONV_SCOPE, conv_id)  # in case a failed plan had used this id
        wrapped = self._keys.create(scope)
        plan.data_keys.append((CONV_SCOPE, conv_id, 1, wrapped.kek_id, wrapped.blob, now))
        plan.new_convs[conv_id] = now
        conv = ConvCache(
            state=ConversationState(conv_id),
            last_seq=0,
            last_hash=GENESIS,
            last_message_seq=0,
            events=self._keys.sealer(CONV_SCOPE, conv_id, 1, EVENTS_DOMAIN, conv_id),
            names=self._keys.sealer(CONV_SCOPE, conv_id, 1, CONV_STATE_DOMAIN, conv_id),
        )
        self.convs[conv_id] = conv
        return conv

    def _append(
        self,
        conv: ConvCache,
        kind: EventKind,
        sender: int,
        payload: dict[str, Any],
        now: int,
        plan: Plan,
    ) -> Event:
        sealer, names = conv.events, conv.names
        assert sealer is not None and names is not None  # decide() refuses shredded ones
        conv_id = conv.state.conv_id
        seq = conv.last_seq + 1
        ciphertext = sealer.seal(seq, kind, _pack(payload), event_binding(sender, now))
        digest = link_hash(conv.last_hash, conv_id, seq, kind, ciphertext)
        plan.events.append((conv_id, seq, kind, sender, now, ciphertext, conv.last_hash, digest))
        conv.last_seq, conv.last_hash = seq, digest
        if kind is EventKind.MESSAGE:
            conv.last_message_seq = seq
            touched = plan.touched.get(conv_id)
            plan.touched[conv_id] = (now, None if touched is None else touched[1])
            return Event(conv_id, seq, kind, sender, now, payload)
        name = plan.touched[conv_id][1] if conv_id in plan.touched else None
        if kind is EventKind.CREATED or kind is EventKind.RENAMED:
            name = names.seal(0, "name", _pack(payload["name"]))
        if kind is EventKind.CREATED:
            for user in payload["members"]:
                plan.new_open[(conv_id, user)] = seq
        elif kind is EventKind.JOINED:
            plan.new_open[(conv_id, payload["user"])] = seq
        elif kind is EventKind.LEFT:
            user = payload["user"]
            joined = plan.new_open.pop((conv_id, user), None)
            if joined is None:
                plan.closes.append((seq + 1, conv_id, user))
            else:
                plan.new_closed.append((conv_id, user, joined, seq + 1))
        plan.touched[conv_id] = (now, name)
        conv.state = apply_membership(conv.state, kind, payload)
        return Event(conv_id, seq, kind, sender, now, payload)


# ---------------------------------------------------------------------------- reads


def _chunks(items: list[Any], size: int) -> Iterable[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


async def known_keys_txn(
    conn: aiosqlite.Connection, ops: Iterable[Operation]
) -> dict[IdemKey, IdemValue]:
    keys = list({(op.conv_id, op.sender, op.client_msg_id) for op in ops})
    found: dict[IdemKey, IdemValue] = {}
    for chunk in _chunks(keys, _MAX_VARIABLES // 3):
        values = ",".join("(?,?,?)" for _ in chunk)
        # A join from the literal keys, not ``IN (VALUES …)``, which SQLite plans as a scan
        # of the whole table (quadratic over the life of the database).
        rows = await conn.execute_fetchall(
            f"WITH k(c, s, m) AS (VALUES {values})"
            " SELECT i.scope_conv, i.sender, i.client_msg_id, i.conv_id, i.first_seq,"
            " i.last_seq FROM k JOIN idempotency_keys i"
            " ON i.scope_conv = k.c AND i.sender = k.s AND i.client_msg_id = k.m",
            [v for key in chunk for v in key],
        )
        for r in rows:
            found[(int(r[0]), int(r[1]), str(r[2]))] = (int(r[3]), int(r[4]), int(r[5]))
    return found


async def active_users_txn(conn: aiosqlite.Connection, wanted: set[int]) -> set[int]:
    active: set[int] = set()
    for chunk in _chunks(list(wanted), _MAX_VARIABLES):
        rows = await conn.execute_fetchall(
            f"SELECT id FROM users WHERE disabled = 0 AND id IN ({','.join('?' * len(chunk))})",
            chunk,
        )
        active.update(int(r[0]) for r in rows)
    return active


async def max_conv_id_txn(conn: aiosqlite.Connection) -> int:
    rows = list(await conn.execute_fetchall("SELECT COALESCE(MAX(id), 0) FROM conversations"))
    return int(rows[0][0])


async def load_convs_txn(
    conn: aiosqlite.Connection, keys: DataKeys, conv_ids: set[int]
) -> dict[int, ConvCache]:
    """The committed state of ``conv_ids``; conversations that do not exist are left out."""
    loaded: dict[int, ConvCache] = {}
    for chunk in _chunks(sorted(conv_ids), _MAX_VARIABLES):
        marks = ",".join("?" * len(chunk))
        heads = await conn.execute_fetchall(
            "SELECT id, last_seq, last_hash, last_message_seq, shredded_at FROM conversations"
            f" WHERE id IN ({marks})",
            chunk,
        )
        members: dict[int, set[int]] = {c: set() for c in chunk}
        ever: dict[int, set[int]] = {c: set() for c in chunk}
        for conv_id, user_id, left_seq in await conn.execute_fetchall(
            f"SELECT conv_id, user_id, left_seq FROM memberships WHERE conv_id IN ({marks})",
            chunk,
        ):
            ever[conv_id].add(user_id)
            if left_seq is None:
                members[conv_id].add(user_id)
        wrapped = {
            int(r[0]): (int(r[1]), str(r[2]), bytes(r[3]))
            for r in await conn.execute_fetchall(
                "SELECT scope_id, version, kek_id, wrapped FROM data_keys WHERE scope = ?"
                f" AND destroyed_at IS NULL AND scope_id IN ({marks}) ORDER BY version",
                [CONV_SCOPE, *chunk],
            )
        }
        for conv_id, last_seq, last_hash, last_message_seq, shredded_at in heads:
            events = names = None
            if shredded_at is None and conv_id in wrapped:
                version, kek_id, blob = wrapped[conv_id]
                keys.load(KeyScope(CONV_SCOPE, conv_id, version), WrappedKey(kek_id, blob))
                events = keys.sealer(CONV_SCOPE, conv_id, version, EVENTS_DOMAIN, conv_id)
                names = keys.sealer(CONV_SCOPE, conv_id, version, CONV_STATE_DOMAIN, conv_id)
            state = ConversationState(
                conv_id, frozenset(members[conv_id]), frozenset(ever[conv_id]), events is None
            )
            loaded[conv_id] = ConvCache(
                state, last_seq, bytes(last_hash), last_message_seq, events, names
            )
    return loaded


# ---------------------------------------------------------------------------- writes


async def write_plan_txn(conn: aiosqlite.Connection, plan: Plan) -> None:
    """Write a plan's rows (inside the caller's transaction), parents before children."""
    if plan.data_keys:
        await conn.executemany(
            "INSERT INTO data_keys (scope, scope_id, version, kek_id, wrapped, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            plan.data_keys,
        )
    inserts, updates = [], []
    for conv_id, (ts, name) in plan.touched.items():
        last_seq, last_hash, last_message_seq = plan.heads[conv_id]
        if conv_id in plan.new_convs:
            inserts.append(
                (conv_id, plan.new_convs[conv_id], last_seq, last_hash, ts, last_message_seq, name)
            )
        else:
            updates.append((last_seq, last_hash, ts, last_message_seq, name, conv_id))
    if inserts:
        await conn.executemany(
            "INSERT INTO conversations (id, created_at, last_seq, last_hash, last_event_at,"
            " last_message_seq, name) VALUES (?, ?, ?, ?, ?, ?, ?)",
            inserts,
        )
    if updates:
        await conn.executemany(
            "UPDATE conversations SET last_seq = ?, last_hash = ?, last_event_at = ?,"
            " last_message_seq = ?, name = COALESCE(?, name) WHERE id = ?",
            updates,
        )
    if plan.events:
        await conn.executemany(
            "INSERT INTO events (conv_id, seq, kind, sender, ts, ciphertext, prev_hash, hash)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            plan.events,
        )
    if plan.closes:
        await conn.executemany(
            "UPDATE memberships SET left_seq = ? WHERE conv_id = ? AND user_id = ?"
            " AND left_seq IS NULL",
            plan.closes,
        )
    intervals = plan.new_closed + [(c, u, j, None) for (c, u), j in plan.new_open.items()]
    if intervals:
        await conn.executemany(
            "INSERT INTO memberships (conv_id, user_id, joined_seq, left_seq) VALUES (?, ?, ?, ?)",
            intervals,
        )
    if plan.idem:
        await conn.executemany(
            "INSERT INTO idempotency_keys (scope_conv, sender, client_msg_id, conv_id,"
            " first_seq, last_seq) VALUES (?, ?, ?, ?, ?, ?)",
            plan.idem,
        )
    await write_claims_txn(conn, plan.claims)  # after the events their triggers look up
