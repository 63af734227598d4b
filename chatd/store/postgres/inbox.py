"""Read markers and the inbox on PostgreSQL.

The counterpart of :mod:`chatd.store.sqlite.inbox`.  Helpers ending in ``_txn`` run inside a
transaction the caller opened.  Visibility is in every query: unread counts and last events
embed :data:`chatd.store.postgres.log.VISIBLE` (the user is ``$1`` in every query here), and
events are opened by :func:`chatd.store.postgres.log.open_events_txn`.

A user's *top* in a conversation is the last seq they may see: the conversation's last seq
while they are a member, the seq of their ``left`` event otherwise (``left_seq - 1``).

**Two nodes marking at once.**  A read marker never moves backwards: the marker is written by
one ``INSERT … ON CONFLICT DO UPDATE SET read_seq = GREATEST(old, new) … RETURNING``.  The
upsert locks the marker's row and computes ``GREATEST`` from its latest committed version
(READ COMMITTED re-reads a row it waited for), so of two concurrent marks the later one to
commit keeps the larger seq, whichever order they commit in; the ``read_markers_forward_only``
trigger would refuse anything else.  The state returned is the marker as this statement left
it (``RETURNING``), never an older snapshot's.
"""

from __future__ import annotations

from typing import Any

from chatd.core.errors import ConversationNotFound, ConversationShreddedError
from chatd.core.events import Event
from chatd.core.records import InboxRow, ReadState
from chatd.store.data_keys import DataKeys
from chatd.store.postgres.context import PostgresContext
from chatd.store.postgres.db import Connection
from chatd.store.postgres.log import EVENT_COLUMNS, LATEST_INTERVALS, VISIBLE, open_events_txn

__all__ = ["LATEST_INTERVALS", "PostgresInbox", "inbox_txn", "mark_read_txn", "top_txn"]


def unread_sql(conv: str, read_seq: str, top: str, cap: str) -> str:
    """A scalar subquery: visible messages after ``read_seq`` up to ``top`` not sent by
    the user (``$1``), counted up to ``cap`` (older ones are archived: nobody can read them)."""
    return (
        "(SELECT COUNT(*) FROM (SELECT 1 FROM events e WHERE e.conv_id = "
        f"{conv} AND e.kind = 'message' AND e.seq > {read_seq} AND e.seq <= {top}"
        f" AND e.sender <> $1 AND {VISIBLE} LIMIT {cap}) AS capped)"
    )


# ---------------------------------------------------------------------------- read markers


async def top_txn(conn: Connection, user_id: int, conv_id: int) -> int:
    top = await conn.fetchval(
        f"SELECT top FROM ({LATEST_INTERVALS}) AS latest WHERE conv_id = $2",
        user_id,
        conv_id,
    )
    if top is None:
        raise ConversationNotFound(conv=conv_id)
    return int(top)


async def mark_read_txn(
    conn: Connection,
    user_id: int,
    conv_id: int,
    seq: int,
    *,
    now: int,
    cap: int,
) -> ReadState:
    top = await top_txn(conn, user_id, conv_id)
    read_seq = await conn.fetchval(
        "INSERT INTO read_markers AS r (user_id, conv_id, read_seq, updated_at)"
        " VALUES ($1, $2, $3, $4) ON CONFLICT (user_id, conv_id) DO UPDATE SET"
        " read_seq = GREATEST(r.read_seq, excluded.read_seq), updated_at = excluded.updated_at"
        " RETURNING r.read_seq",
        user_id,
        conv_id,
        max(0, min(seq, top)),
        now,
    )
    unread = await conn.fetchval(
        "SELECT " + unread_sql("$2", "$3", "$4", "$5"),
        user_id,
        conv_id,
        int(read_seq),
        top,
        cap,
    )
    return ReadState(conv_id, int(read_seq), int(unread))


# ---------------------------------------------------------------------------- inbox


async def inbox_txn(
    conn: Connection,
    user_id: int,
    keys: DataKeys,
    *,
    cap: int,
) -> list[InboxRow]:
    heads = list(
        await conn.fetch(
            f"WITH latest AS ({LATEST_INTERVALS})"
            " SELECT l.conv_id, l.is_member, l.top, COALESCE(r.read_seq, 0),"
            " (SELECT MAX(n.seq) FROM events n WHERE n.conv_id = l.conv_id"
            "  AND n.kind IN ('created', 'renamed') AND n.seq <= l.top), "
            + unread_sql("l.conv_id", "COALESCE(r.read_seq, 0)", "l.top", "$2")
            + " FROM latest l LEFT JOIN read_markers r"
            " ON r.user_id = $1 AND r.conv_id = l.conv_id",
            user_id,
            cap,
        )
    )
    if not heads:
        return []
    members: dict[int, list[int]] = {}
    for conv_id, member in await conn.fetch(
        f"WITH latest AS ({LATEST_INTERVALS})"
        " SELECT m.conv_id, m.user_id FROM memberships m JOIN latest l ON l.conv_id = m.conv_id"
        " WHERE m.joined_seq <= l.top AND (m.left_seq IS NULL OR m.left_seq > l.top + 1)"
        " ORDER BY m.conv_id, m.user_id",
        user_id,
    ):
        members.setdefault(int(conv_id), []).append(int(member))
    wanted = {(int(h[0]), int(h[2])) for h in heads}
    wanted |= {(int(h[0]), int(h[4])) for h in heads if h[4] is not None}
    pairs = sorted(wanted)
    raw: dict[tuple[int, int], Any] = {}
    # Arrays, not a VALUES list: one statement whatever the number of conversations.
    for row in await conn.fetch(
        f"SELECT {EVENT_COLUMNS} FROM unnest($1::bigint[], $2::bigint[]) AS k(c, s)"
        " JOIN events e ON e.conv_id = k.c AND e.seq = k.s",
        [c for c, _ in pairs],
        [s for _, s in pairs],
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


class PostgresInbox:
    """:class:`~chatd.store.contract.InboxStore` on PostgreSQL."""

    def __init__(self, ctx: PostgresContext) -> None:
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
