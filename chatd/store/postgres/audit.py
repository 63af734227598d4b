"""The administrators' audit log on PostgreSQL: append, list, and the chain check of ``verify``.

The twin of :mod:`chatd.store.sqlite.audit`, on the same table (``admin_audit`` of
:mod:`.migration_1`): append-only by triggers, dense seqs, each row linked to the one before
(the insert trigger refuses anything else) and hashed over its fields
(:func:`~chatd.crypto.chain.audit_link_hash`, an HMAC under the log's own data key: a
``data_keys`` row of scope ``'audit'``, made with the first record, never destroyed).
:func:`append_admin_action_txn` runs inside the transaction of the change it records, so the
change and its record commit together or not at all; :meth:`PostgresAdminAudit.
append_admin_action` is its own transaction, for what changes no row.

**Several nodes append.**  The chain has one head, the row of the highest seq, and two nodes
reading it at once would both link to it.  So an append first takes the chain's lock,
:data:`APPEND_LOCK`: a transaction-level advisory lock keyed by the table's OID (not ``LOCK
TABLE``: a mode that excludes itself needs UPDATE, DELETE or TRUNCATE on the table, and the
application role may only SELECT and INSERT there).  It waits for any other append to commit
or roll back; reads do not take it, so a checkpoint reading the head never waits.  Then it
reads the head, which in a ``READ COMMITTED`` transaction is the committed one, and links to
it; the lock is held until its transaction ends, so records commit in seq order and a reader
never sees a gap.  The same lock makes the audit key's creation (with the first record)
happen once.  What does not take the lock (SQL by hand) is still refused by the insert
trigger and the primary key.

A caller in a ``REPEATABLE READ`` or ``SERIALIZABLE`` transaction reads the head of its
snapshot, which may be stale: its insert then collides with the committed seq, and the
collision is raised as a serialization failure, which
:meth:`~.context.PostgresContext.write` retries whole.

The lock is taken last in the transactions that append (after their own row locks): two
appends that also lock rows may still deadlock if they lock them in another order; the
deadlock is retried like a serialization failure.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Sequence
from typing import Any

import asyncpg

from chatd.core.audit import ActionKind, Actor, ActorKind, AdminAction, AuditEntry, AuditQuery
from chatd.core.errors import IntegrityError
from chatd.core.records import VerifyProblem
from chatd.crypto.chain import GENESIS, audit_link_hash
from chatd.crypto.envelope import (
    KeyScope,
    WrappedKey,
    new_data_key,
    unwrap_data_key,
    wrap_data_key,
)
from chatd.i18n import N_, Text
from chatd.store.data_keys import AUDIT_SCOPE, DataKeys
from chatd.store.postgres.context import PostgresContext
from chatd.store.postgres.db import Connection

COLUMNS = "seq, at, actor_kind, actor, action, target_kind, target, counts, prev_hash, hash"
CHECK_PAGE = 2000
AUDIT_KEY = KeyScope(AUDIT_SCOPE, 0, 1)
# Held by an append until its transaction ends; (table OID, 0) is no other lock's key.
APPEND_LOCK = "SELECT pg_advisory_xact_lock('admin_audit'::regclass::oid::int, 0)"


async def audit_key_txn(
    conn: Connection, keys: DataKeys, now_ms: int, *, create: bool
) -> bytes | None:
    """The audit log's MAC key; made (and stored wrapped) if ``create`` and there is none
    (``create`` only under the append lock, so two nodes never both make it).

    Unwrapped from its row each time, never from :class:`DataKeys`' cache: a key this node
    made in a transaction that then rolled back must not stand in for the one another node
    stored (an append is rare, an unwrap cheap)."""
    row = await conn.fetchrow(
        "SELECT kek_id, wrapped FROM data_keys WHERE scope = $1 AND scope_id = 0"
        " AND version = 1 AND destroyed_at IS NULL",
        AUDIT_SCOPE,
    )
    if row is not None:
        return unwrap_data_key(keys.ring, WrappedKey(str(row[0]), bytes(row[1])), AUDIT_KEY)
    if not create:
        return None
    key = new_data_key()
    wrapped = wrap_data_key(keys.ring, key, AUDIT_KEY)
    await conn.execute(
        "INSERT INTO data_keys (scope, scope_id, version, kek_id, wrapped, created_at)"
        " VALUES ($1, 0, 1, $2, $3, $4)",
        AUDIT_SCOPE,
        wrapped.kek_id,
        wrapped.blob,
        now_ms,
    )
    return key


def _counts_json(action: AdminAction) -> str:
    return json.dumps(dict(action.counts), sort_keys=True, separators=(",", ":"))


def _entry(row: Sequence[Any]) -> AuditEntry:
    """A row as an entry; ValueError (or a subclass) if a field is not one chatd writes."""
    seq, at, actor_kind, actor, kind, _target_kind, target, counts, prev_hash, digest = row
    counts_map = json.loads(counts)
    if not isinstance(counts_map, dict):
        raise ValueError("counts is not a JSON object")
    actor_of = Actor(ActorKind(actor_kind), actor)
    action = AdminAction(actor_of, ActionKind(kind), target, counts_map).complete()
    return AuditEntry(int(seq), int(at), action, bytes(prev_hash), bytes(digest))


# Never said to a person: ctx.write retries the transaction on it (SQLSTATE 40001).
STALE_HEAD = "the admin audit head moved after this transaction's snapshot"


async def append_admin_action_txn(
    conn: Connection, keys: DataKeys, action: AdminAction, now_ms: int
) -> AuditEntry:
    """Append ``action`` (its target filled) after the last record, in the caller's
    transaction (which then holds the append lock until it ends)."""
    action = action.complete()
    await conn.execute(APPEND_LOCK)
    key = await audit_key_txn(conn, keys, now_ms, create=True)
    assert key is not None
    row = await conn.fetchrow("SELECT seq, hash FROM admin_audit ORDER BY seq DESC LIMIT 1")
    seq, prev = (int(row[0]) + 1, bytes(row[1])) if row is not None else (1, GENESIS)
    digest = audit_link_hash(key, prev, seq, now_ms, action)
    try:
        await conn.execute(
            f"INSERT INTO admin_audit ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            seq,
            now_ms,
            action.actor.kind.value,
            action.actor.name,
            action.kind.value,
            action.target_kind.value,
            action.target,
            _counts_json(action),
            prev,
            digest,
        )
    except asyncpg.UniqueViolationError as exc:
        # Only a snapshot older than the lock (a REPEATABLE READ or SERIALIZABLE caller)
        # reads a stale head: retry the caller's transaction, whole.
        raise asyncpg.SerializationError(STALE_HEAD) from exc
    return AuditEntry(seq, now_ms, action, prev, digest)


class PostgresAdminAudit:
    """:class:`~chatd.store.contract.AdminAuditStore` on PostgreSQL."""

    def __init__(self, ctx: PostgresContext) -> None:
        self._ctx = ctx

    async def append_admin_action(self, action: AdminAction) -> AuditEntry:
        ctx = self._ctx
        action.complete()  # refuse before opening a transaction that would fail

        async def run(conn: Connection) -> AuditEntry:
            return await append_admin_action_txn(conn, ctx.keys, action, ctx.clock_ms())

        return await ctx.write("append_admin_action", run, keeps_conversation_cache=True)

    async def admin_actions(self, query: AuditQuery) -> list[AuditEntry]:
        where, params = ["seq > $1"], [query.after_seq]
        if query.since_ms is not None:
            params.append(query.since_ms)
            where.append(f"at >= ${len(params)}")
        if query.until_ms is not None:
            params.append(query.until_ms)
            where.append(f"at < ${len(params)}")
        kinds = sorted(kind.value for kind in query.kinds)
        if kinds:
            where.append(f"action = ANY(${len(params) + 1}::text[])")
        args: list[Any] = [*params, *([kinds] if kinds else []), query.limit]
        async with self._ctx.read("read_admin_actions") as conn:
            rows = await conn.fetch(
                f"SELECT {COLUMNS} FROM admin_audit WHERE {' AND '.join(where)}"
                f" ORDER BY seq LIMIT ${len(args)}",
                *args,
            )
        return [_entry(tuple(row)) for row in rows]


def _broken(seq: int, msgid: str, **params: object) -> VerifyProblem:
    return VerifyProblem(0, 0, Text(msgid, params), audit_seq=seq)


async def verify_audit_chain_txn(
    conn: Connection, keys: DataKeys
) -> tuple[int, VerifyProblem | None]:
    """Walk the audit log in the caller's snapshot: how many records it holds, and the first
    broken one (a gap, a link to another record, a field that does not hash to the stored
    hash, a field chatd never writes, no key to check it with)."""
    expected, prev, count = 1, GENESIS, 0
    try:
        key = await audit_key_txn(conn, keys, 0, create=False)
    except IntegrityError as exc:
        return 0, _broken(1, N_("the audit log's key: {reason}"), reason=exc.text)
    while True:
        rows = await conn.fetch(
            f"SELECT {COLUMNS} FROM admin_audit WHERE seq >= $1 ORDER BY seq LIMIT $2",
            expected,
            CHECK_PAGE,
        )
        for record in rows:
            row = tuple(record)
            count += 1
            seq = int(row[0])
            if seq != expected:
                return count, _broken(expected, N_("record missing (gap in seqs)"))
            if bytes(row[8]) != prev:
                return count, _broken(seq, N_("prev_hash does not link to the record before"))
            try:
                entry = _entry(row)
            except (ValueError, TypeError):
                return count, _broken(seq, N_("a field holds a value chatd never writes"))
            if key is None:
                return count, _broken(seq, N_("the audit log has no key"))
            if row[5] != entry.action.target_kind.value:
                return count, _broken(seq, N_("hash mismatch: the record was altered"))
            if not hmac.compare_digest(
                audit_link_hash(key, prev, seq, entry.at_ms, entry.action), entry.hash
            ):
                return count, _broken(seq, N_("hash mismatch: the record was altered"))
            prev, expected = entry.hash, seq + 1
        if len(rows) < CHECK_PAGE:
            return count, None
