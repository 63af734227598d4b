"""The administrators' audit log on SQLite: append, list, and the chain check of ``verify``.

Table ``admin_audit`` (migration 9): append-only by triggers, dense seqs, each row linked to the
one before (the insert trigger refuses anything else) and hashed over its fields
(:func:`~chatd.crypto.chain.audit_link_hash`, an HMAC under the log's own data key: a
``data_keys`` row of scope ``'audit'``, made with the first record, re-wrapped by key rotation
like the others, never destroyed).  :func:`append_admin_action_txn` runs inside
the transaction of the change it records — a new account, a disabled one, a reset password,
re-wrapped keys, a shredded conversation, a new epoch — so that the change and its record
commit together or not at all.  :meth:`SqliteAdminAudit.append_admin_action` is its own
transaction, for what changes no row (a master key retired from the key file).
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Sequence
from typing import Any

import aiosqlite

from chatd.core.audit import ActionKind, Actor, ActorKind, AdminAction, AuditEntry, AuditQuery
from chatd.core.errors import IntegrityError
from chatd.core.records import VerifyProblem
from chatd.crypto.chain import GENESIS, audit_link_hash
from chatd.crypto.envelope import KeyScope, WrappedKey
from chatd.i18n import N_, Text
from chatd.store.data_keys import AUDIT_SCOPE, DataKeys
from chatd.store.sqlite.context import SqliteContext

COLUMNS = "seq, at, actor_kind, actor, action, target_kind, target, counts, prev_hash, hash"
CHECK_PAGE = 2000
AUDIT_KEY = KeyScope(AUDIT_SCOPE, 0, 1)


async def audit_key_txn(
    conn: aiosqlite.Connection, keys: DataKeys, now_ms: int, *, create: bool
) -> bytes | None:
    """The audit log's MAC key; made (and stored wrapped) if ``create`` and there is none."""
    rows = list(
        await conn.execute_fetchall(
            "SELECT kek_id, wrapped FROM data_keys WHERE scope = ? AND scope_id = 0"
            " AND version = 1 AND destroyed_at IS NULL",
            (AUDIT_SCOPE,),
        )
    )
    if rows:
        return keys.key(AUDIT_KEY, WrappedKey(str(rows[0][0]), bytes(rows[0][1])))
    if not create:
        return None
    wrapped = keys.create(AUDIT_KEY)
    await conn.execute(
        "INSERT INTO data_keys (scope, scope_id, version, kek_id, wrapped, created_at)"
        " VALUES (?, 0, 1, ?, ?, ?)",
        (AUDIT_SCOPE, wrapped.kek_id, wrapped.blob, now_ms),
    )
    return keys.key(AUDIT_KEY, wrapped)


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


async def append_admin_action_txn(
    conn: aiosqlite.Connection, keys: DataKeys, action: AdminAction, now_ms: int
) -> AuditEntry:
    """Append ``action`` (its target filled) after the last record, in the caller's
    transaction."""
    action = action.complete()
    key = await audit_key_txn(conn, keys, now_ms, create=True)
    assert key is not None
    rows = list(
        await conn.execute_fetchall("SELECT seq, hash FROM admin_audit ORDER BY seq DESC LIMIT 1")
    )
    seq, prev = (int(rows[0][0]) + 1, bytes(rows[0][1])) if rows else (1, GENESIS)
    digest = audit_link_hash(key, prev, seq, now_ms, action)
    await conn.execute(
        f"INSERT INTO admin_audit ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
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
        ),
    )
    return AuditEntry(seq, now_ms, action, prev, digest)


class SqliteAdminAudit:
    """:class:`~chatd.store.contract.AdminAuditStore` on SQLite."""

    def __init__(self, ctx: SqliteContext) -> None:
        self._ctx = ctx

    async def append_admin_action(self, action: AdminAction) -> AuditEntry:
        ctx = self._ctx
        action.complete()  # refuse before queueing a job that would fail

        async def run(conn: aiosqlite.Connection) -> AuditEntry:
            return await append_admin_action_txn(conn, ctx.keys, action, ctx.clock_ms())

        return await ctx.write("append_admin_action", run, keeps_conversation_cache=True)

    async def admin_actions(self, query: AuditQuery) -> list[AuditEntry]:
        where, params = ["seq > ?"], [query.after_seq]
        if query.since_ms is not None:
            where.append("at >= ?")
            params.append(query.since_ms)
        if query.until_ms is not None:
            where.append("at < ?")
            params.append(query.until_ms)
        kinds = sorted(kind.value for kind in query.kinds)
        if kinds:
            where.append(f"action IN ({', '.join('?' * len(kinds))})")
        async with self._ctx.read("read_admin_actions") as conn:
            rows = await conn.execute_fetchall(
                f"SELECT {COLUMNS} FROM admin_audit WHERE {' AND '.join(where)}"
                " ORDER BY seq LIMIT ?",
                (*params, *kinds, query.limit),
            )
        return [_entry(row) for row in rows]


def _broken(seq: int, msgid: str, **params: object) -> VerifyProblem:
    return VerifyProblem(0, 0, Text(msgid, params), audit_seq=seq)


async def verify_audit_chain_txn(
    conn: aiosqlite.Connection, keys: DataKeys
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
        rows = list(
            await conn.execute_fetchall(
                f"SELECT {COLUMNS} FROM admin_audit WHERE seq >= ? ORDER BY seq LIMIT ?",
                (expected, CHECK_PAGE),
            )
        )
        for row in rows:
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
