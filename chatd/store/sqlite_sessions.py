"""SQLite side of what the gateway needs: login tokens, read markers, inbox rows, audiences.

Helpers ending in ``_txn`` run inside a transaction the caller opened (a named read from
:meth:`SqliteStore._read`, or a write job of the single writer).  Visibility is in every
query: unread counts and last events embed :data:`chatd.store.sqlite.VISIBLE`; the audience
of an event is the set of membership intervals containing its seq.

A user's *top* in a conversation is the last seq they may see: the conversation's last seq
while they are a member, the seq of their ``left`` event otherwise (``left_seq - 1``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import aiosqlite

from chatd.core.errors import ConversationNotFound, ConversationShreddedError
from chatd.core.events import Event
from chatd.core.records import InboxRow, Interval, ReadState, SessionToken

OpenEvents = Callable[[aiosqlite.Connection, Iterable[Any]], Awaitable[list[Event]]]

_SESSION_COLUMNS = "token_hash, user_id, created_at, expires_at, revoked_at"

# For every conversation the user is or was in: their latest interval and their top.
LATEST_INTERVALS = (
    "SELECT m.conv_id, m.left_seq IS NULL AS is_member,"
    " CASE WHEN m.left_seq IS NULL THEN c.last_seq ELSE m.left_seq - 1 END AS top"
    " FROM memberships m JOIN conversations c ON c.id = m.conv_id"
    " WHERE m.user_id = :user AND m.joined_seq = (SELECT MAX(m2.joined_seq)"
    " FROM memberships m2 WHERE m2.conv_id = m.conv_id AND m2.user_id = :user)"
)


def unread_sql(conv: str, read_seq: str, top: str, visible: str) -> str:
    """A scalar subquery: visible messages after ``read_seq`` up to ``top`` not sent by
    ``:user``, counted up to ``:cap`` (older ones are archived: nobody can read them)."""
    return (
        "(SELECT COUNT(*) FROM (SELECT 1 FROM events e WHERE e.conv_id = "
        f"{conv} AND e.kind = 'message' AND e.seq > {read_seq} AND e.seq <= {top}"
        f" AND e.sender != :user AND {visible} LIMIT :cap))"
    )


# ---------------------------------------------------------------------------- tokens


def _token(row: Any) -> SessionToken:
    token_hash, user_id, created_at, expires_at, revoked_at = row
    return SessionToken(
        bytes(token_hash),
        int(user_id),
        int(created_at),
        int(expires_at),
        None if revoked_at is None else int(revoked_at),
    )


async def insert_token_txn(conn: aiosqlite.Connection, token: SessionToken) -> None:
    await conn.execute(
        f"INSERT INTO auth_tokens ({_SESSION_COLUMNS}) VALUES (?, ?, ?, ?, ?)",
        (token.token_hash, token.user_id, token.created_at, token.expires_at, token.revoked_at),
    )


async def find_token_txn(conn: aiosqlite.Connection, token_hash: bytes) -> SessionToken | None:
    rows = list(
        await conn.execute_fetchall(
            f"SELECT {_SESSION_COLUMNS} FROM auth_tokens WHERE token_hash = ?", (token_hash,)
        )
    )
    return _token(rows[0]) if rows else None


async def revoke_token_txn(conn: aiosqlite.Connection, token_hash: bytes, revoked_at: int) -> bool:
    cursor = await conn.execute(
        "UPDATE auth_tokens SET revoked_at = ? WHERE token_hash = ? AND revoked_at IS NULL",
        (revoked_at, token_hash),
    )
    return cursor.rowcount == 1


async def revoke_user_tokens_txn(conn: aiosqlite.Connection, user_id: int, revoked_at: int) -> int:
    cursor = await conn.execute(
        "UPDATE auth_tokens SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL",
        (revoked_at, user_id),
    )
    return int(cursor.rowcount)


async def revoke_other_tokens_txn(
    conn: aiosqlite.Connection, user_id: int, keep: bytes, revoked_at: int
) -> list[bytes]:
    """Revoke every live token of the user but ``keep``; the digests revoked (the caller's
    write transaction makes the read and the update one step)."""
    where = "user_id = ? AND revoked_at IS NULL AND token_hash != ?"
    rows = await conn.execute_fetchall(
        f"SELECT token_hash FROM auth_tokens WHERE {where}", (user_id, keep)
    )
    await conn.execute(
        f"UPDATE auth_tokens SET revoked_at = ? WHERE {where}", (revoked_at, user_id, keep)
    )
    return sorted(bytes(r[0]) for r in rows)


async def invalid_tokens_txn(
    conn: aiosqlite.Connection, token_hashes: list[bytes], now_ms: int
) -> set[bytes]:
    """Which of ``token_hashes`` no longer authorise anything: unknown, revoked, expired, or
    belonging to a disabled account.  One query per 500 tokens."""
    valid: set[bytes] = set()
    for start in range(0, len(token_hashes), 500):
        chunk = token_hashes[start : start + 500]
        rows = await conn.execute_fetchall(
            "SELECT t.token_hash FROM auth_tokens t JOIN users u ON u.id = t.user_id"
            f" WHERE t.token_hash IN ({','.join('?' * len(chunk))})"
            " AND t.revoked_at IS NULL AND t.expires_at > ? AND u.disabled = 0",
            [*chunk, now_ms],
        )
        valid.update(bytes(r[0]) for r in rows)
    return set(token_hashes) - valid


async def purge_tokens_txn(conn: aiosqlite.Connection, expired_before: int) -> int:
    cursor = await conn.execute("DELETE FROM auth_tokens WHERE expires_at < ?", (expired_before,))
    return int(cursor.rowcount)


# ---------------------------------------------------------------------------- audience


async def audience_txn(
    conn: aiosqlite.Connection, conv_id: int, first_seq: int, last_seq: int
) -> dict[int, frozenset[int]]:
    rows = await conn.execute_fetchall(
        "SELECT user_id, joined_seq, left_seq FROM memberships WHERE conv_id = ?"
        " AND joined_seq <= ? AND (left_seq IS NULL OR left_seq > ?)",
        (conv_id, last_seq, first_seq),
    )
    intervals = [
        (int(u), Interval(int(j), None if left is None else int(left))) for u, j, left in rows
    ]
    return {
        seq: frozenset(user for user, interval in intervals if interval.contains(seq))
        for seq in range(first_seq, last_seq + 1)
    }


# ---------------------------------------------------------------------------- read markers


async def top_txn(conn: aiosqlite.Connection, user_id: int, conv_id: int) -> int:
    rows = list(
        await conn.execute_fetchall(
            f"SELECT top FROM ({LATEST_INTERVALS}) WHERE conv_id = :conv",
            {"user": user_id, "conv": conv_id},
        )
    )
    if not rows:
        raise ConversationNotFound(conv=conv_id)
    return int(rows[0][0])


async def mark_read_txn(
    conn: aiosqlite.Connection,
    user_id: int,
    conv_id: int,
    seq: int,
    *,
    now: int,
    cap: int,
    visible: str,
) -> ReadState:
    top = await top_txn(conn, user_id, conv_id)
    await conn.execute(
        "INSERT INTO read_markers (user_id, conv_id, read_seq, updated_at) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (user_id, conv_id) DO UPDATE SET"
        " read_seq = MAX(read_seq, excluded.read_seq), updated_at = excluded.updated_at",
        (user_id, conv_id, max(0, min(seq, top)), now),
    )
    rows = list(
        await conn.execute_fetchall(
            "SELECT r.read_seq, "
            + unread_sql(":conv", "r.read_seq", ":top", visible)
            + " FROM read_markers r WHERE r.user_id = :user AND r.conv_id = :conv",
            {"user": user_id, "conv": conv_id, "top": top, "cap": cap},
        )
    )
    read_seq, unread = rows[0]
    return ReadState(conv_id, int(read_seq), int(unread))


# ---------------------------------------------------------------------------- inbox


async def inbox_txn(
    conn: aiosqlite.Connection,
    user_id: int,
    *,
    cap: int,
    visible: str,
    event_columns: str,
    open_events: OpenEvents,
) -> list[InboxRow]:
    params = {"user": user_id, "cap": cap}
    heads = list(
        await conn.execute_fetchall(
            f"WITH latest AS ({LATEST_INTERVALS})"
            " SELECT l.conv_id, l.is_member, l.top, COALESCE(r.read_seq, 0),"
            " (SELECT MAX(n.seq) FROM events n WHERE n.conv_id = l.conv_id"
            "  AND n.kind IN ('created', 'renamed') AND n.seq <= l.top), "
            + unread_sql("l.conv_id", "COALESCE(r.read_seq, 0)", "l.top", visible)
            + " FROM latest l LEFT JOIN read_markers r"
            " ON r.user_id = :user AND r.conv_id = l.conv_id",
            params,
        )
    )
    if not heads:
        return []
    members: dict[int, list[int]] = {}
    for conv_id, member in await conn.execute_fetchall(
        f"WITH latest AS ({LATEST_INTERVALS})"
        " SELECT m.conv_id, m.user_id FROM memberships m JOIN latest l ON l.conv_id = m.conv_id"
        " WHERE m.joined_seq <= l.top AND (m.left_seq IS NULL OR m.left_seq > l.top + 1)"
        " ORDER BY m.conv_id, m.user_id",
        params,
    ):
        members.setdefault(int(conv_id), []).append(int(member))
    wanted = {(int(h[0]), int(h[2])) for h in heads}
    wanted |= {(int(h[0]), int(h[4])) for h in heads if h[4] is not None}
    raw: dict[tuple[int, int], Any] = {}
    pairs = sorted(wanted)
    for start in range(0, len(pairs), 400):  # stay under SQLite's variable limit
        chunk = pairs[start : start + 400]
        values = ",".join("(?,?)" for _ in chunk)
        for row in await conn.execute_fetchall(
            f"WITH k(c, s) AS (VALUES {values}) SELECT {event_columns}"
            " FROM k JOIN events e ON e.conv_id = k.c AND e.seq = k.s",
            [v for pair in chunk for v in pair],
        ):
            raw[(int(row[0]), int(row[1]))] = row
    rows: list[InboxRow] = []
    for conv_id, is_member, top, read_seq, name_seq, unread in heads:
        last_event: Event | None = None
        name: str | None = None
        try:
            if (conv_id, top) in raw:
                last_event = (await open_events(conn, [raw[(conv_id, top)]]))[0]
            if name_seq is not None and (conv_id, name_seq) in raw:
                name = str((await open_events(conn, [raw[(conv_id, name_seq)]]))[0].payload["name"])
        except ConversationShreddedError:
            last_event, name = None, None
        rows.append(
            InboxRow(
                conv_id=int(conv_id),
                is_member=bool(is_member),
                name=name,
                members=tuple(members.get(int(conv_id), ())),
                last_event=last_event,
                last_seq=int(top),
                read_seq=int(read_seq),
                unread=int(unread),
            )
        )
    rows.sort(key=lambda r: (r.last_event.ts if r.last_event else 0, r.conv_id), reverse=True)
    return rows
