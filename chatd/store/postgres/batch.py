"""The SQL of one group-commit batch on PostgreSQL, where several nodes append at once.

The planner (:class:`chatd.store.planner.BatchPlanner`) is the same as on SQLite; what
changes is what its cache may be trusted for.  On SQLite one process appends, so the cache
is the truth.  Here another node may have appended to a conversation since this node last
did, so in the batch's transaction, **before planning**:

1. :func:`lock_heads_txn` locks the head row of every conversation the batch touches
   (``SELECT … ORDER BY id FOR UPDATE``: one order on every node, so two nodes never
   deadlock on them).  Until COMMIT, no other node appends to those conversations.
2. A cached conversation whose locked head (last seq and hash, shredding) is not the one
   the cache holds is dropped (:func:`stale_conversations`); it is loaded again, inside
   the transaction, under the lock (:func:`load_convs_txn`).
3. Idempotency keys are read after the lock: a retry that reached another node while the
   first attempt committed there finds the first attempt's result.

Creations lock no conversation.  Their ids come from the ``conversation_ids`` sequence
(:func:`reserve_conv_ids_txn`: gaps are harmless).  Two nodes storing one creation retried
under one key both insert its idempotency key: the second fails on the primary key, and the
writer plans the batch again, which then finds the first's result.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from chatd.core.conversations import ConversationState, Operation
from chatd.crypto.envelope import KeyScope, WrappedKey
from chatd.crypto.row_macs import IDEMPOTENCY_KEYS, MEMBERSHIPS, RowMacs
from chatd.store.data_keys import CONV_SCOPE, CONV_STATE_DOMAIN, EVENTS_DOMAIN, DataKeys
from chatd.store.planner import ConvCache, IdemKey, IdemValue, Plan
from chatd.store.postgres.claims import write_claims_txn
from chatd.store.postgres.db import Connection
from chatd.store.postgres.row_macs import row_ok, update_rows_txn

# (last_seq, last_hash, shredded) of a locked head
Head = tuple[int, bytes, bool]


# ---------------------------------------------------------------------------- reads


async def lock_heads_txn(conn: Connection, conv_ids: Iterable[int]) -> dict[int, Head]:
    """Lock the head rows of ``conv_ids`` (the ones that exist), in id order."""
    wanted = sorted(set(conv_ids))
    if not wanted:
        return {}
    rows = await conn.fetch(
        "SELECT id, last_seq, last_hash, shredded_at IS NOT NULL AS shredded FROM conversations"
        " WHERE id = ANY($1::BIGINT[]) ORDER BY id FOR UPDATE",
        wanted,
    )
    return {int(r["id"]): (int(r["last_seq"]), bytes(r["last_hash"]), r["shredded"]) for r in rows}


def stale_conversations(cached: Mapping[int, ConvCache], heads: Mapping[int, Head]) -> set[int]:
    """The cached conversations whose locked head says another node changed them (or that
    no longer exist)."""
    stale = set()
    for conv_id, conv in cached.items():
        head = heads.get(conv_id)
        if head is None:
            continue  # not in this batch
        seq, digest, shredded = head
        if (seq, digest) != (conv.last_seq, conv.last_hash) or shredded != (conv.events is None):
            stale.add(conv_id)
    return stale


async def known_keys_txn(
    conn: Connection, ops: Iterable[Operation], macs: RowMacs
) -> tuple[dict[IdemKey, IdemValue], set[IdemKey]]:
    """The results already recorded for the operations' keys, and the keys whose row fails
    its MAC: such a row can answer for nothing, so its operation is refused."""
    keys = sorted({(op.conv_id, op.sender, op.client_msg_id) for op in ops})
    rows = await conn.fetch(
        "SELECT i.scope_conv, i.sender, i.client_msg_id, i.conv_id, i.first_seq, i.last_seq,"
        " i.mac FROM unnest($1::BIGINT[], $2::BIGINT[], $3::TEXT[]) AS k(c, s, m)"
        " JOIN idempotency_keys i"
        " ON i.scope_conv = k.c AND i.sender = k.s AND i.client_msg_id = k.m",
        [k[0] for k in keys],
        [k[1] for k in keys],
        [k[2] for k in keys],
    )
    found: dict[IdemKey, IdemValue] = {}
    untrusted: set[IdemKey] = set()
    for r in rows:
        values = tuple(r)
        key = (int(values[0]), int(values[1]), str(values[2]))
        who = f"the retry key of user {key[1]} in conversation {values[3]}"
        if not row_ok(macs, IDEMPOTENCY_KEYS, values[:6], values[6], who):
            untrusted.add(key)
            continue
        found[key] = (int(values[3]), int(values[4]), int(values[5]))
    return found, untrusted


async def active_users_txn(conn: Connection, wanted: set[int]) -> set[int]:
    rows = await conn.fetch(
        "SELECT id FROM users WHERE NOT disabled AND id = ANY($1::BIGINT[])", sorted(wanted)
    )
    return {int(r[0]) for r in rows}


async def reserve_conv_ids_txn(conn: Connection, count: int) -> list[int]:
    """``count`` new conversation ids from the sequence every node shares."""
    rows = await conn.fetch(
        "SELECT nextval('conversation_ids') FROM generate_series(1, $1::INT)", count
    )
    return sorted(int(r[0]) for r in rows)


async def load_convs_txn(
    conn: Connection, keys: DataKeys, conv_ids: set[int]
) -> dict[int, ConvCache]:
    """The committed state of ``conv_ids``; conversations that do not exist are left out."""
    wanted = sorted(conv_ids)
    if not wanted:
        return {}
    heads = await conn.fetch(
        "SELECT id, last_seq, last_hash, last_message_seq, shredded_at FROM conversations"
        " WHERE id = ANY($1::BIGINT[])",
        wanted,
    )
    members: dict[int, set[int]] = {c: set() for c in wanted}
    ever: dict[int, set[int]] = {c: set() for c in wanted}
    for r in await conn.fetch(
        "SELECT conv_id, user_id, left_seq FROM memberships WHERE conv_id = ANY($1::BIGINT[])",
        wanted,
    ):
        ever[r[0]].add(r[1])
        if r[2] is None:
            members[r[0]].add(r[1])
    wrapped = {
        int(r[0]): (int(r[1]), str(r[2]), bytes(r[3]))
        for r in await conn.fetch(
            "SELECT scope_id, version, kek_id, wrapped FROM data_keys WHERE scope = $1"
            " AND destroyed_at IS NULL AND scope_id = ANY($2::BIGINT[]) ORDER BY version",
            CONV_SCOPE,
            wanted,
        )
    }
    loaded: dict[int, ConvCache] = {}
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
            state, int(last_seq), bytes(last_hash), int(last_message_seq), events, names
        )
    return loaded


# ---------------------------------------------------------------------------- writes


async def write_plan_txn(conn: Connection, plan: Plan) -> None:
    """Write a plan's rows (inside the caller's transaction), parents before children."""
    if plan.data_keys:
        await conn.executemany(
            "INSERT INTO data_keys (scope, scope_id, version, kek_id, wrapped, created_at)"
            " VALUES ($1, $2, $3, $4, $5, $6)",
            plan.data_keys,
        )
    inserts: list[tuple[Any, ...]] = []
    updates: list[tuple[Any, ...]] = []
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
            " last_message_seq, name) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            inserts,
        )
    if updates:
        await conn.executemany(
            "UPDATE conversations SET last_seq = $1, last_hash = $2, last_event_at = $3,"
            " last_message_seq = $4, name = COALESCE($5, name) WHERE id = $6",
            updates,
        )
    if plan.events:
        await conn.executemany(
            "INSERT INTO events (conv_id, seq, kind, sender, ts, ciphertext, prev_hash, hash)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            [(c, s, str(k), *rest) for c, s, k, *rest in plan.events],
        )
    intervals = plan.new_closed + [(c, u, j, None) for (c, u), j in plan.new_open.items()]
    if plan.closes or intervals or plan.claims or plan.idem:
        if plan.ring is None:
            raise RuntimeError("a plan without its key ring cannot MAC its rows")
        macs = RowMacs(plan.ring)
        for left_seq, conv_id, user_id in plan.closes:
            await update_rows_txn(
                conn,
                macs,
                MEMBERSHIPS,
                "conv_id = $1 AND user_id = $2 AND left_seq IS NULL",
                (conv_id, user_id),
                {"left_seq": left_seq},
            )
        if intervals:
            await conn.executemany(
                "INSERT INTO memberships (conv_id, user_id, joined_seq, left_seq, mac)"
                " VALUES ($1, $2, $3, $4, $5)",
                [(*row, macs.mac(MEMBERSHIPS, row)) for row in intervals],
            )
        await write_claims_txn(conn, macs, plan.claims)  # after the events their triggers read
        if plan.idem:
            await conn.executemany(
                "INSERT INTO idempotency_keys (scope_conv, sender, client_msg_id, conv_id,"
                " first_seq, last_seq, mac) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                [(*row, macs.mac(IDEMPOTENCY_KEYS, row)) for row in plan.idem],
            )
