"""The row audit of ``chatd verify``: every hash chain, every seal, every attachment row.

A tampered database is found however it was tampered with:

* a byte changed in a ciphertext → the seal does not open and the recomputed hash differs;
* a row removed → a gap in the seqs, or the log ends before ``conversations.last_seq``;
* two rows swapped → their recomputed hashes and AADs no longer fit their place;
* a whole row rewritten with a consistent hash → the next row's ``prev_hash`` breaks;
* a membership row added, removed or moved (who may read what) → the intervals replayed from
  the log's ``created``/``joined``/``left`` events differ from the ``memberships`` rows.

A damaged file is reported, not raised: SQLite's own ``PRAGMA integrity_check`` runs first
(pages, indexes, free lists), and a conversation, profile list or attachment page whose rows
cannot be read becomes a problem of its own while the audit goes on with the rest, so that
``chatd verify`` always ends with a report.

The clear columns of a conversation that repeat its log (its times, its last message seq,
whether it is shredded, its operation rows, its data keys' times) are checked in the same walk
(:mod:`.consistency`): no chain, seal or MAC covers them.

The first broken seq of each conversation is reported (what follows a break cannot be trusted
and would only repeat it).  Shredded conversations keep their chain, which is still checked;
their seals cannot be opened any more, by design.

Attachment rows are audited too (:mod:`.attachment_audit`): each one's reference (a message
of its uploader), its data key, its sealed name and thumbnail.  The files are the attachment
service's to audit; :meth:`SqliteAttachments.attachment_keys` gives it the keys of the rows
that pass here.

Every authenticated row's MAC is checked (:func:`.row_macs.verify_row_macs_txn`): an account,
a login token, a membership interval or an attachment row edited in clear is named.

The admin audit log's chain is walked last (:func:`.audit.verify_audit_chain_txn`): its first
broken record is reported.
"""

from __future__ import annotations

import sqlite3
import struct
from collections.abc import Sequence
from typing import Any

import aiosqlite
import msgpack

from chatd.core.errors import IntegrityError
from chatd.core.events import EventKind
from chatd.core.records import VerifyProblem, VerifyReport
from chatd.crypto.chain import GENESIS, link_hash
from chatd.crypto.envelope import KeyScope, WrappedKey, event_binding, sealed_key_version
from chatd.crypto.row_macs import RowMacs
from chatd.i18n import N_, Text
from chatd.store.data_keys import (
    CONV_SCOPE,
    CONV_STATE_DOMAIN,
    DIRECTORY_SCOPE,
    EVENTS_DOMAIN,
    PROFILE_DOMAIN,
    DataKeys,
)
from chatd.store.log_consistency import IdemRow, LogFacts, OperationCheck, conversation_problem
from chatd.store.sqlite.attachment_audit import AUDIT_PAGE, audit_page_txn
from chatd.store.sqlite.audit import verify_audit_chain_txn
from chatd.store.sqlite.consistency import (
    OPERATIONS_QUERY,
    audit_key_problem_txn,
    conv_keys_txn,
    creations_txn,
)
from chatd.store.sqlite.damage import said
from chatd.store.sqlite.row_macs import verify_row_macs_txn
from chatd.store.sqlite.schema_check import check_schema_txn

CHUNK = 2000
INTEGRITY_LINES = 20  # what PRAGMA integrity_check reports at most (the first are enough)
# What reading a damaged file raises: SQLite's errors, and a value of a type the column never
# held (a flipped type byte reads back an integer where a hash was).
UNREADABLE = (sqlite3.DatabaseError, ValueError, TypeError, KeyError, IndexError, struct.error)


def _why(exc: Exception) -> Text | str:
    """What an exception says, to be said in the operator's language when it is ours."""
    return exc.text if isinstance(exc, IntegrityError) else str(exc)


def _problem(
    conv_id: int, seq: int, msgid: str, user_id: int | None = None, **params: object
) -> VerifyProblem:
    return VerifyProblem(conv_id, seq, Text(msgid, params), user_id)


async def verify_txn(
    conn: aiosqlite.Connection, keys: DataKeys, conv_ids: Sequence[int] | None
) -> VerifyReport:
    """The row audit in one snapshot: chains (of ``conv_ids``, else all, with SQLite's own
    integrity check, the schema against the migrations', every profile, every attachment
    row and the admin audit log's chain)."""
    damage = await integrity_check_txn(conn) if conv_ids is None else []
    if conv_ids is None:
        try:
            # A dropped or edited trigger disarms the defences without touching a row.
            damage += await check_schema_txn(conn)
        except UNREADABLE as exc:
            damage.append(unreadable(exc))
    try:
        report = await verify_chains_txn(conn, keys, conv_ids)
    except UNREADABLE as exc:  # not even the list of conversations reads
        return VerifyReport(0, 0, (*damage, unreadable(exc)))
    if conv_ids is not None:
        return report
    checked, problems, after = 0, [*damage, *report.problems], 0
    try:
        while page := await audit_page_txn(conn, keys.ring, after, AUDIT_PAGE):
            for verdict in page:
                if verdict.problem is not None:
                    problems.append(
                        VerifyProblem.of_attachment(
                            verdict.id, verdict.conv_id, verdict.seq, verdict.problem
                        )
                    )
                elif not verdict.shredded:
                    checked += 1
            after = page[-1].id
    except UNREADABLE as exc:
        problems.append(unreadable(exc))
    try:  # every authenticated row's MAC (accounts, tokens, memberships, attachments)
        problems.extend(await verify_row_macs_txn(conn, RowMacs(keys.ring)))
    except UNREADABLE as exc:
        problems.append(unreadable(exc))
    admin_actions = 0
    try:
        admin_actions, broken_record = await verify_audit_chain_txn(conn, keys)
        key_problem = await audit_key_problem_txn(conn)
    except UNREADABLE as exc:
        problems.append(unreadable(exc))
    else:
        problems.extend(p for p in (broken_record, key_problem) if p is not None)
    return VerifyReport(
        report.conversations,
        report.events,
        tuple(problems),
        checked,
        admin_actions=admin_actions,
    )


def unreadable(exc: Exception, conv_id: int = 0) -> VerifyProblem:
    """Rows SQLite could not read, as a problem (of the database when ``conv_id`` is 0)."""
    return VerifyProblem(conv_id, 0, Text(N_("database damaged: {reason}"), {"reason": said(exc)}))


async def integrity_check_txn(conn: aiosqlite.Connection) -> list[VerifyProblem]:
    """SQLite's own check of the file: its pages, indexes and free lists."""
    try:
        rows = await conn.execute_fetchall(f"PRAGMA integrity_check({INTEGRITY_LINES})")
    except sqlite3.DatabaseError as exc:
        return [unreadable(exc)]
    lines = [" ".join(str(row[0]).split()) for row in rows]
    if lines == ["ok"]:
        return []
    return [
        VerifyProblem(0, 0, Text(N_("database damaged: {reason}"), {"reason": line}))
        for line in lines
    ]


async def verify_chains_txn(
    conn: aiosqlite.Connection, keys: DataKeys, conv_ids: Sequence[int] | None
) -> VerifyReport:
    rows = await conn.execute_fetchall(
        "SELECT id, last_seq, last_hash, name, shredded_at, created_at, last_event_at,"
        " last_message_seq FROM conversations ORDER BY id"
    )
    convs = {int(r[0]): (int(r[0]), int(r[1]), *r[2:]) for r in rows}
    problems: list[VerifyProblem] = []
    logged = {int(r[0]) for r in await conn.execute_fetchall("SELECT DISTINCT conv_id FROM events")}
    for orphan in sorted(logged - convs.keys()):
        problems.append(_problem(orphan, 1, N_("events of a conversation that does not exist")))
    selected = sorted(convs) if conv_ids is None else [c for c in conv_ids if c in convs]
    if conv_ids is None:
        try:
            problems.extend(await _verify_profiles_txn(conn, keys))
        except UNREADABLE as exc:
            problems.append(unreadable(exc))
    creations = await creations_txn(conn)
    total = 0
    for conv_id in selected:
        try:
            count, problem = await _verify_one_txn(
                conn, keys, convs[conv_id], creations.get(conv_id, [])
            )
        except UNREADABLE as exc:
            count, problem = 0, unreadable(exc, conv_id)
        total += count
        if problem is not None:
            problems.append(problem)
    return VerifyReport(len(selected), total, tuple(problems))


async def _verify_profiles_txn(conn: aiosqlite.Connection, keys: DataKeys) -> list[VerifyProblem]:
    """Every user's sealed profile must open (a broken one would break every user listing)."""
    versions = {
        int(r[0])
        for r in await conn.execute_fetchall(
            "SELECT version FROM data_keys WHERE scope = ? AND scope_id = 0"
            " AND destroyed_at IS NULL",
            (DIRECTORY_SCOPE,),
        )
    }
    problems = []
    for user_id, profile in await conn.execute_fetchall(
        "SELECT id, profile FROM users ORDER BY id"
    ):
        try:
            version = sealed_key_version(profile)
            if version not in versions:
                raise IntegrityError(N_("Sealed under an unknown key version."))
            sealer = keys.sealer(DIRECTORY_SCOPE, 0, version, PROFILE_DOMAIN, user_id)
            msgpack.unpackb(sealer.open(0, "profile", profile))
        except (IntegrityError, ValueError, KeyError) as exc:
            problems.append(
                _problem(0, 0, N_("profile does not open: {reason}"), user_id, reason=_why(exc))
            )
    return problems


async def _verify_one_txn(
    conn: aiosqlite.Connection, keys: DataKeys, conv: tuple[Any, ...], creations: list[IdemRow]
) -> tuple[int, VerifyProblem | None]:
    """The first problem of one conversation: its chain, seals and membership rows, then the
    clear columns that repeat its log (:mod:`.consistency`)."""
    conv_id, last_seq, _, sealed_name, shredded_at = conv[:5]
    live: set[int] = set()
    if shredded_at is None:
        for version, kek_id, blob in await conn.execute_fetchall(
            "SELECT version, kek_id, wrapped FROM data_keys WHERE scope = ? AND scope_id = ?"
            " AND destroyed_at IS NULL",
            (CONV_SCOPE, conv_id),
        ):
            try:
                keys.load(KeyScope(CONV_SCOPE, conv_id, version), WrappedKey(kek_id, blob))
            except IntegrityError as exc:
                return 0, _problem(conv_id, 0, N_("data key: {reason}"), reason=exc.text)
            live.add(int(version))
        if not live:
            return 0, _problem(conv_id, 0, N_("no live data key for a conversation in use"))
        try:
            version = sealed_key_version(sealed_name)
            keys.sealer(CONV_SCOPE, conv_id, version, CONV_STATE_DOMAIN, conv_id).open(
                0,
                "name",
                sealed_name,
            )
        except (IntegrityError, KeyError):
            return 0, _problem(conv_id, 0, N_("the sealed conversation name does not open"))

    facts, operations = LogFacts(), OperationCheck(conv_id, creations)
    # The conversation's operation rows, streamed in seq order beside its events.
    operation_rows = await conn.execute(OPERATIONS_QUERY, (conv_id,))
    try:
        count, problem = await _walk_txn(conn, keys, conv, live, facts, operations, operation_rows)
        if problem is not None:
            return count, problem
        more = bool(await operation_rows.fetchmany(1))
    finally:
        await operation_rows.close()
    operations.finish(last_seq, more)
    if operations.problem is not None:
        seq, text = operations.problem
        return count, _problem(conv_id, seq, text)
    why = conversation_problem((*conv[5:], shredded_at), facts, await conv_keys_txn(conn, conv_id))
    if why is not None:
        return count, _problem(conv_id, 0, why)
    return count, None


async def _walk_txn(
    conn: aiosqlite.Connection,
    keys: DataKeys,
    conv: tuple[Any, ...],
    live: set[int],
    facts: LogFacts,
    operations: OperationCheck,
    operation_rows: aiosqlite.Cursor,
) -> tuple[int, VerifyProblem | None]:
    """Walk the chain, open the seals, replay the membership intervals; feed ``facts`` and
    ``operations`` with every event."""
    conv_id, last_seq, last_hash = conv[:3]
    expected, prev, count = 1, GENESIS, 0
    # Membership intervals replayed from the log: (user, joined_seq, left_seq).
    open_at: dict[int, int] = {}
    intervals: set[tuple[int, int, int | None]] = set()
    while True:
        rows = list(
            await conn.execute_fetchall(
                "SELECT seq, kind, sender, ts, ciphertext, prev_hash, hash FROM events"
                " WHERE conv_id = ? AND seq >= ? ORDER BY seq LIMIT ?",
                (conv_id, expected, CHUNK),
            )
        )
        for seq, kind, sender, ts, ciphertext, prev_hash, stored_hash in rows:
            count += 1
            if seq != expected:
                return count, _problem(conv_id, expected, N_("event missing (gap in seqs)"))
            if prev_hash != prev:
                return count, _problem(
                    conv_id, seq, N_("prev_hash does not link to the event before")
                )
            digest = link_hash(prev, conv_id, seq, kind, ciphertext)
            if digest != stored_hash:
                return count, _problem(conv_id, seq, N_("hash mismatch: the row was altered"))
            facts.see(seq, kind, ts)
            if operations.needs_rows(seq):
                operations.add_rows(map(tuple, await operation_rows.fetchmany(CHUNK)))
            operations.see(seq, sender, ts)
            if live:
                try:
                    version = sealed_key_version(ciphertext)
                    if version not in live:
                        raise IntegrityError(N_("Sealed under an unknown key version."))
                    sealer = keys.sealer(CONV_SCOPE, conv_id, version, EVENTS_DOMAIN, conv_id)
                    binding = event_binding(sender, ts)
                    payload = msgpack.unpackb(sealer.open(seq, kind, ciphertext, binding))
                except (IntegrityError, ValueError) as exc:
                    return count, _problem(
                        conv_id, seq, N_("seal does not open: {reason}"), reason=_why(exc)
                    )
                if kind == EventKind.CREATED:
                    open_at.update((int(user), seq) for user in payload["members"])
                elif kind == EventKind.JOINED:
                    open_at[int(payload["user"])] = seq
                elif kind == EventKind.LEFT:
                    user = int(payload["user"])
                    intervals.add((user, open_at.pop(user, 0), seq + 1))
            prev, expected = digest, seq + 1
        if len(rows) < CHUNK:
            break
    if expected - 1 != last_seq:
        return count, _problem(
            conv_id,
            expected,
            N_(
                "the log ends at seq {last} but the conversation records {count} events"
                " (rows removed)"
            ),
            last=str(expected - 1),
            count=str(last_seq),
        )
    if prev != last_hash:
        return count, _problem(
            conv_id, last_seq, N_("the last hash differs from the conversation's")
        )
    if live:  # a shredded log cannot be replayed: its payloads no longer open
        intervals.update((user, joined, None) for user, joined in open_at.items())
        stored = {
            (int(user), int(joined), None if left is None else int(left))
            for user, joined, left in await conn.execute_fetchall(
                "SELECT user_id, joined_seq, left_seq FROM memberships WHERE conv_id = ?",
                (conv_id,),
            )
        }
        if stored != intervals:
            first = min(joined for _, joined, _ in stored ^ intervals)
            return count, _problem(
                conv_id, first, N_("the membership rows differ from the log (who may read what)")
            )
    return count, None
