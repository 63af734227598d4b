"""Read markers and the inbox on SQLite.

Helpers ending in ``_txn`` run inside a transaction the caller opened.  Visibility is in every
query: unread counts and last events embed :data:`chatd.store.sqlite.log.VISIBLE`, and events
are opened by :func:`chatd.store.sqlite.log.open_events_txn`.

A user's *top* in a conversation is the last seq they may see: the conversation's last seq
while they are a member, the seq of their ``left`` event otherwise (``left_seq - 1``).
"""

from __future__ import annotations

from typing import Any

import aiosqlite

from chatd.core.errors import ConversationNotFound, ConversationShreddedError
from chatd.core.events import Event
from chatd.core.records import InboxRow, ReadState
from chatd.store.data_keys import DataKeys
from chatd.store.sqlite.context import SqliteContext
from chatd.store.sqlite.log import EVENT_COLUMNS, VISIBLE, open_events_txn

# For every conversation the user is or was in: their latest interval and their top.
LATEST_INTERVALS = (
    "SELECT m.conv_id, m.left_seq IS NULL AS is_member,"
    " CASE WHEN m.left_seq IS NULL THEN c.last_seq ELSE m.left_seq - 1 END AS top"
    " FROM memberships m JOIN conversations c ON c.id = m.conv_id"
    " WHERE m.user_id = :user AND m.joined_seq = (SELECT MAX(m2.joined_seq)"
    " FROM memberships m2 WHERE m2.conv_id = m.conv_id AND m2.user_id = :user)"
)


def unread_sql(conv: str, read_seq: str, top: str) -> str:
    """A scalar subquery: visible messages after ``read_seq`` up to ``top`` not sent by
    ``:user``, counted up to ``:cap`` (older ones are archived: nobody can read them)."""
    return (
        "(SELECT COUNT(*) FROM (SELECT 1 FROM events e WHERE e.conv_id = "
        f"{conv} AND e.kind = 'message' AND e.seq > {read_seq} AND e.seq <= {top}"
        f" AND e.sender != :user AND {VISIBLE} LIMIT :cap))"
    )


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
            + unread_sql(":conv", "r.read_seq", ":top")
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
    keys: DataKeys,
    *,
    cap: int,
) -> list[InboxRow]:
    params = {"user": user_id, "cap": cap}
    heads = list(
        await conn.execute_fetchall(
            f"WITH latest AS ({LATEST_INTERVALS})"
            " SELECT l.conv_id, l.is_member, l.top, COALESCE(r.read_seq, 0),"
            " (SELECT MAX(n.seq) FROM events n WHERE n.conv_id = l.conv_id"
            "  AND n.kind IN ('created', 'renamed') AND n.seq <= l.top), "
            + unread_sql("l.conv_id", "COALESCE(r.read_seq, 0)", "l.top")
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
            f"WITH k(c, s) AS (VALUES {values}) SELECT {EVENT_COLUMNS}"
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
                last_event = (await open_events_txn(conn, keys, [raw[(conv_id, top)]]))[0]
            if name_seq is not None and (conv_id, name_seq) in raw:
                named = await open_events_txn(conn, keys, [raw[(conv_id, name_seq)]])
                name = str(named[0].payload["name"])
        except ConversationShreddedError:
            last_event, name = None, None
        head_row = raw.get((conv_id, top))
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
                last_hash=None if head_row is None else bytes(head_row[6]),
            )
        )
    rows.sort(key=lambda r: (r.last_event.ts if r.last_event else 0, r.conv_id), reverse=True)
    return rows


class SqliteInbox:
    """:class:`~chatd.store.contract.InboxStore` on SQLite."""

    def __init__(self, ctx: SqliteContext) -> None:
        self._ctx = ctx
        self.window_size = ctx.window_size

    async def mark_read(self, user_id: int, conv_id: int, seq: int) -> ReadState:
        ctx = self._ctx
        return await ctx.write(
            "mark_read",
            lambda conn: mark_read_txn(
                conn, user_id, conv_id, seq, now=ctx.clock_ms(), cap=ctx.window_size
            ),
            keeps_conversation_cache=True,  # read markers are not conversation state
        )

    async def inbox(self, user_id: int) -> list[InboxRow]:
        ctx = self._ctx
        async with ctx.read("read_inbox") as conn:
            return await inbox_txn(conn, user_id, ctx.keys, cap=ctx.window_size)
