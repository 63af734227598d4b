"""The SQL of one group-commit batch: what the planner reads first, and how a plan is written.

:class:`chatd.store.planner.BatchPlanner` decides, numbers, seals and chains in memory; the
``*_txn`` functions here are the SQL around it: the planning reads (idempotency keys, active
users, conversations not in the planner's cache, the next conversation id) and the
``executemany`` calls that write a :class:`~chatd.store.planner.Plan`, parents before children.

The planner's cache is right because SQLite has a single appender (see
:class:`chatd.store.contract.LogStore`): the writer of the one ``chatd serve`` holding the
server lock.  The one change another process may make — shredding by ``chatd retention run`` —
is refused at the database level by the ``events_refuse_shredded`` trigger, which fails the
batch, drops the cache and makes the next attempt reload the shredded state.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import aiosqlite

from chatd.core.conversations import ConversationState, Operation
from chatd.crypto.envelope import KeyScope, WrappedKey
from chatd.crypto.row_macs import IDEMPOTENCY_KEYS, RowMacs
from chatd.store.data_keys import CONV_SCOPE, CONV_STATE_DOMAIN, EVENTS_DOMAIN, DataKeys
from chatd.store.planner import ConvCache, IdemKey, IdemValue, Plan
from chatd.store.sqlite.claims import write_claims_txn
from chatd.store.sqlite.row_macs import MEMBERSHIPS, row_ok, update_rows_txn

_MAX_VARIABLES = 900  # below SQLite's default limit of 999 bound parameters per statement


# ---------------------------------------------------------------------------- reads


def _chunks(items: list[Any], size: int) -> Iterable[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


async def known_keys_txn(
    conn: aiosqlite.Connection, ops: Iterable[Operation], macs: RowMacs
) -> tuple[dict[IdemKey, IdemValue], set[IdemKey]]:
    """The results already recorded for the operations' keys, and the keys whose row fails
    its MAC (migration 11): such a row can answer for nothing, and a second append under
    its key would meet it in the unique index, so its operation is refused."""
    keys = list({(op.conv_id, op.sender, op.client_msg_id) for op in ops})
    found: dict[IdemKey, IdemValue] = {}
    untrusted: set[IdemKey] = set()
    for chunk in _chunks(keys, _MAX_VARIABLES // 3):
        values = ",".join("(?,?,?)" for _ in chunk)
        # A join from the literal keys, not ``IN (VALUES …)``, which SQLite plans as a scan
        # of the whole table (quadratic over the life of the database).
        rows = await conn.execute_fetchall(
            f"WITH k(c, s, m) AS (VALUES {values})"
            " SELECT i.scope_conv, i.sender, i.client_msg_id, i.conv_id, i.first_seq,"
            " i.last_seq, i.mac FROM k JOIN idempotency_keys i"
            " ON i.scope_conv = k.c AND i.sender = k.s AND i.client_msg_id = k.m",
            [v for key in chunk for v in key],
        )
        for r in rows:
            key = (int(r[0]), int(r[1]), str(r[2]))
            who = f"the retry key of user {key[1]} in conversation {r[3]}"
            if not row_ok(macs, IDEMPOTENCY_KEYS, tuple(r[:6]), r[6], who):
                untrusted.add(key)
                continue
            found[key] = (int(r[3]), int(r[4]), int(r[5]))
    return found, untrusted


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
    intervals = plan.new_closed + [(c, u, j, None) for (c, u), j in plan.new_open.items()]
    if plan.closes or intervals or plan.claims:
        if plan.ring is None:
            raise RuntimeError("a plan without its key ring cannot MAC its rows")
        macs = RowMacs(plan.ring)
        # Membership rows with their MACs (chatd.crypto.row_macs): a close reads the open
        # interval for its joined_seq, which the MAC covers.
        for left_seq, conv_id, user_id in plan.closes:
            await update_rows_txn(
                conn,
                macs,
                MEMBERSHIPS,
                "conv_id = ? AND user_id = ? AND left_seq IS NULL",
                (conv_id, user_id),
                {"left_seq": left_seq},
            )
        if intervals:
            await conn.executemany(
                "INSERT INTO memberships (conv_id, user_id, joined_seq, left_seq, mac)"
                " VALUES (?, ?, ?, ?, ?)",
                [(*row, macs.mac(MEMBERSHIPS, row)) for row in intervals],
            )
        await write_claims_txn(conn, macs, plan.claims)  # after the events their triggers read
    if plan.idem:
        if plan.ring is None:
            raise RuntimeError("a plan without its key ring cannot MAC its rows")
        idem_macs = RowMacs(plan.ring)
        # A retry's key is the answer a retry gets: under a MAC (migration 11), so that an
        # edited key cannot make a retry apply twice or answer for another operation.
        await conn.executemany(
            "INSERT INTO idempotency_keys (scope_conv, sender, client_msg_id, conv_id,"
            " first_seq, last_seq, mac) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(*row, idem_macs.mac(IDEMPOTENCY_KEYS, row)) for row in plan.idem],
        )
