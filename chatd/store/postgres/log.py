"""The conversation log on PostgreSQL: visibility, windows, pages, heads, audiences, export.

The counterpart of :mod:`chatd.store.sqlite.log`, query for query.  Visibility is part of
every read query: :data:`VISIBLE` is the membership-interval predicate each read path embeds
(the inbox, the chain views and the attachment reads import it too), so no caller can forget
it.  **Convention: in every query that embeds** :data:`VISIBLE` (or
:data:`LATEST_INTERVALS`) **the user is ``$1``**; a query built
elsewhere can use :func:`visible` to put the user at another placeholder.

:func:`open_events_txn` opens event rows with the conversation's data key, checking in the
same snapshot that the conversation was not shredded.  Appends go through this node's
group-commit writer (:meth:`PostgresContext.apply`).

Several nodes write at once, but nothing here writes: every method is one read-only
``REPEATABLE READ`` transaction (:meth:`PostgresContext.read`), so a window, a page or an
inbox is read from one snapshot, whatever other nodes commit meanwhile — the same guarantee
as a SQLite read transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import msgpack

from chatd.core.conversations import Operation
from chatd.core.errors import ConversationNotFound, ConversationShreddedError, ValidationError
from chatd.core.events import Event
from chatd.core.records import AppendResult, ConversationHead, EventPage, Interval
from chatd.core.visibility import WINDOW_EXTRA_EVENTS
from chatd.crypto.envelope import KeyScope, Sealer, WrappedKey, event_binding, sealed_key_version
from chatd.i18n import N_
from chatd.store.data_keys import CONV_SCOPE, EVENTS_DOMAIN, DataKeys
from chatd.store.postgres.context import PostgresContext
from chatd.store.postgres.db import Connection


def visible(user: str = "$1") -> str:
    """The visibility predicate on ``events e`` for the user at placeholder ``user``."""
    return (
        f"EXISTS (SELECT 1 FROM memberships m WHERE m.conv_id = e.conv_id AND m.user_id = {user}"
        " AND e.seq >= m.joined_seq AND (m.left_seq IS NULL OR e.seq < m.left_seq))"
    )


VISIBLE = visible("$1")
# For every conversation the user ($1) is or was in: their latest interval and their *top*,
# the last seq they may see (the conversation's last seq while a member, the seq of their
# ``left`` event otherwise).  The inbox, the heads and the chain views build on it.
LATEST_INTERVALS = (
    "SELECT m.conv_id, m.left_seq IS NULL AS is_member,"
    " CASE WHEN m.left_seq IS NULL THEN c.last_seq ELSE m.left_seq - 1 END AS top"
    " FROM memberships m JOIN conversations c ON c.id = m.conv_id"
    " WHERE m.user_id = $1 AND m.joined_seq = (SELECT MAX(m2.joined_seq)"
    " FROM memberships m2 WHERE m2.conv_id = m.conv_id AND m2.user_id = $1)"
)
EVENT_COLUMNS = "e.conv_id, e.seq, e.kind, e.sender, e.ts, e.ciphertext, e.hash, e.prev_hash"
MAX_PAGE = 1000
NO_LEFT_SEQ = 9223372036854775807  # an open interval's end, for MIN/MAX over intervals

__all__ = [
    "EVENT_COLUMNS",
    "LATEST_INTERVALS",
    "MAX_PAGE",
    "VISIBLE",
    "WINDOW_EXTRA_EVENTS",
    "PostgresLog",
    "check_limit",
    "load_conv_key_txn",
    "open_events_txn",
    "visible",
    "window_start_txn",
]


def check_limit(limit: int) -> None:
    if not 1 <= limit <= MAX_PAGE:
        raise ValidationError(
            N_("The number of items asked for must be from {min} to {max}."),
            field="limit",
            min=1,
            max=MAX_PAGE,
        )


# ---------------------------------------------------------------------------- opening events


async def load_conv_key_txn(conn: Connection, keys: DataKeys, conv_id: int, version: int) -> None:
    if keys.knows(CONV_SCOPE, conv_id, version):
        return
    row = await conn.fetchrow(
        "SELECT kek_id, wrapped FROM data_keys WHERE scope = $1 AND scope_id = $2 AND version = $3",
        CONV_SCOPE,
        conv_id,
        version,
    )
    if row is None or row["wrapped"] is None:
        raise ConversationShreddedError(conv=conv_id)
    keys.load(
        KeyScope(CONV_SCOPE, conv_id, version), WrappedKey(row["kek_id"], bytes(row["wrapped"]))
    )


async def open_events_txn(conn: Connection, keys: DataKeys, rows: Iterable[Any]) -> list[Event]:
    """Open rows of :data:`EVENT_COLUMNS`; ConversationShreddedError if one's conversation
    was shredded (in this snapshot)."""
    rows = list(rows)
    # Shredding is checked in this read's snapshot, never inferred from the key cache: a
    # read whose snapshot predates a shred may have re-cached the data key after the shred
    # forgot it, and another node (or ``chatd retention run``) may be the one that shreds.
    conv_ids = sorted({int(r[0]) for r in rows})
    if conv_ids:
        shredded = [
            int(r[0])
            for r in await conn.fetch(
                "SELECT id FROM conversations WHERE id = ANY($1::bigint[])"
                " AND shredded_at IS NOT NULL ORDER BY id",
                conv_ids,
            )
        ]
        if shredded:
            for conv_id in shredded:
                keys.forget(CONV_SCOPE, conv_id)
            raise ConversationShreddedError(conv=shredded[0])
    events = []
    sealers: dict[tuple[int, int], Sealer] = {}  # a page has one or two keys at most
    for conv_id, seq, kind, sender, ts, ciphertext, digest, prev in rows:
        ciphertext = bytes(ciphertext)
        version = sealed_key_version(ciphertext)
        sealer = sealers.get((conv_id, version))
        if sealer is None:
            if not keys.knows(CONV_SCOPE, conv_id, version):
                await load_conv_key_txn(conn, keys, conv_id, version)
            sealer = keys.sealer(CONV_SCOPE, conv_id, version, EVENTS_DOMAIN, conv_id)
            sealers[(conv_id, version)] = sealer
        opened = sealer.open(seq, kind, ciphertext, event_binding(sender, ts))
        payload = msgpack.unpackb(opened)
        events.append(Event(conv_id, seq, kind, sender, ts, payload, bytes(digest), bytes(prev)))
    return events


# ---------------------------------------------------------------------------- windows


async def window_start_txn(
    conn: Connection, user_id: int, conv_id: int, window_size: int
) -> tuple[int, bool]:
    """(first seq of the user's window, whether older visible events are archived).

    The window starts right after the user's (W+1)-th most recent visible message, so it
    holds W messages and every system event after the last archived message; with W or
    fewer messages it starts at the user's first visible event and nothing is archived.
    """
    bounds = await conn.fetchrow(
        "SELECT MIN(joined_seq) AS low, MAX(COALESCE(left_seq, $3)) AS high"
        " FROM memberships WHERE conv_id = $2 AND user_id = $1",
        user_id,
        conv_id,
        NO_LEFT_SEQ,
    )
    if bounds is None or bounds["low"] is None:
        raise ConversationNotFound(conv=conv_id)
    low, high = int(bounds["low"]), int(bounds["high"])
    found = await conn.fetchval(
        "SELECT e.seq FROM events e WHERE e.conv_id = $2 AND e.kind = 'message'"
        f" AND e.seq >= $3 AND e.seq < $4 AND {VISIBLE}"
        " ORDER BY e.seq DESC LIMIT 1 OFFSET $5",
        user_id,
        conv_id,
        low,
        high,
        window_size,
    )
    if found is not None:
        return int(found) + 1, True
    return low, False


async def _page_txn(
    conn: Connection,
    keys: DataKeys,
    user_id: int,
    conv_id: int,
    where: str,
    params: Sequence[Any],
    limit: int,
    newest_first: bool,
) -> tuple[list[Event], bool]:
    """A page of the user's visible events; ``where`` numbers its placeholders from ``$3``
    (``$1`` the user, ``$2`` the conversation) and ``params`` fills them."""
    order = "DESC" if newest_first else "ASC"
    rows = list(
        await conn.fetch(
            f"SELECT {EVENT_COLUMNS} FROM events e WHERE e.conv_id = $2 AND {where}"
            f" AND {VISIBLE} ORDER BY e.seq {order} LIMIT ${len(params) + 3}",
            user_id,
            conv_id,
            *params,
            limit + 1,
        )
    )
    has_more = len(rows) > limit
    rows = rows[:limit]
    if newest_first:
        rows.reverse()
    return await open_events_txn(conn, keys, rows), has_more


class PostgresLog:
    """:class:`~chatd.store.contract.LogStore` on PostgreSQL."""

    def __init__(self, ctx: PostgresContext) -> None:
        self._ctx = ctx

    async def apply(self, op: Operation) -> AppendResult:
        return await self._ctx.apply(op)

    async def current_members(self, conv_id: int) -> frozenset[int]:
        async with self._ctx.read("read_members") as conn:
            rows = await conn.fetch(
                "SELECT user_id FROM memberships WHERE conv_id = $1 AND left_seq IS NULL",
                conv_id,
            )
        return frozenset(int(r[0]) for r in rows)

    async def intervals(self, user_id: int, conv_id: int) -> tuple[Interval, ...]:
        async with self._ctx.read("read_intervals") as conn:
            rows = await conn.fetch(
                "SELECT joined_seq, left_seq FROM memberships WHERE conv_id = $1"
                " AND user_id = $2 ORDER BY joined_seq",
                conv_id,
                user_id,
            )
        return tuple(Interval(int(j), None if left is None else int(left)) for j, left in rows)

    async def fellow_members(self, user_id: int, others: Sequence[int]) -> frozenset[int]:
        wanted = sorted({int(u) for u in others})
        if not wanted:
            return frozenset()
        async with self._ctx.read("read_fellow_members") as conn:
            rows = await conn.fetch(
                "SELECT DISTINCT theirs.user_id FROM memberships AS mine"
                " JOIN memberships AS theirs ON theirs.conv_id = mine.conv_id"
                " WHERE mine.user_id = $1 AND theirs.user_id = ANY($2::bigint[])",
                user_id,
                wanted,
            )
            fellows = {int(r[0]) for r in rows}
            oneself = user_id in wanted and user_id not in fellows  # before any conversation
            if oneself and await conn.fetchval("SELECT 1 FROM users WHERE id = $1", user_id):
                fellows.add(user_id)
        return frozenset(fellows)

    async def visible_window(self, user_id: int, conv_id: int) -> EventPage:
        ctx = self._ctx
        async with ctx.read("read_window") as conn:
            start, archived = await window_start_txn(conn, user_id, conv_id, ctx.window_size)
            events, has_more = await _page_txn(
                conn,
                ctx.keys,
                user_id,
                conv_id,
                "e.seq >= $3",
                [start],
                ctx.window_size + WINDOW_EXTRA_EVENTS,
                newest_first=True,
            )
        return EventPage(conv_id, tuple(events), archived, has_more, start)

    async def events_after(
        self, user_id: int, conv_id: int, after_seq: int, limit: int
    ) -> EventPage:
        check_limit(limit)
        ctx = self._ctx
        async with ctx.read("read_events_after") as conn:
            start, _ = await window_start_txn(conn, user_id, conv_id, ctx.window_size)
            archived = False
            if after_seq < start - 1:
                skipped = await conn.fetchval(
                    "SELECT 1 FROM events e WHERE e.conv_id = $2 AND e.seq > $3"
                    f" AND e.seq < $4 AND {VISIBLE} LIMIT 1",
                    user_id,
                    conv_id,
                    after_seq,
                    start,
                )
                archived = skipped is not None
            events, has_more = await _page_txn(
                conn,
                ctx.keys,
                user_id,
                conv_id,
                "e.seq >= $3",
                [max(after_seq + 1, start)],
                limit,
                newest_first=False,
            )
        return EventPage(conv_id, tuple(events), archived, has_more, start)

    async def events_before(
        self, user_id: int, conv_id: int, before_seq: int, limit: int
    ) -> EventPage:
        check_limit(limit)
        ctx = self._ctx
        async with ctx.read("read_events_before") as conn:
            start, archived_exist = await window_start_txn(conn, user_id, conv_id, ctx.window_size)
            events, has_more = await _page_txn(
                conn,
                ctx.keys,
                user_id,
                conv_id,
                "e.seq >= $3 AND e.seq < $4",
                [start, before_seq],
                limit,
                newest_first=True,
            )
        return EventPage(conv_id, tuple(events), archived_exist and not has_more, has_more, start)

    async def conversation_heads(self, user_id: int) -> list[ConversationHead]:
        async with self._ctx.read("read_conversation_heads") as conn:
            rows = await conn.fetch(
                f"WITH latest AS ({LATEST_INTERVALS})"
                f" SELECT latest.is_member, {EVENT_COLUMNS} FROM latest"
                " JOIN events e ON e.conv_id = latest.conv_id AND e.seq = latest.top"
                f" WHERE {VISIBLE} ORDER BY e.ts DESC, e.conv_id DESC",
                user_id,
            )
            heads = []
            for is_member, *event_row in rows:
                try:
                    opened: Event | None = (
                        await open_events_txn(conn, self._ctx.keys, [event_row])
                    )[0]
                except ConversationShreddedError:
                    opened = None
                heads.append(
                    ConversationHead(int(event_row[0]), bool(is_member), opened, int(event_row[1]))
                )
        return heads

    async def audience(
        self, conv_id: int, first_seq: int, last_seq: int
    ) -> dict[int, frozenset[int]]:
        """The users whose membership intervals contain each seq."""
        async with self._ctx.read("read_audience") as conn:
            rows = await conn.fetch(
                "SELECT user_id, joined_seq, left_seq FROM memberships WHERE conv_id = $1"
                " AND joined_seq <= $2 AND (left_seq IS NULL OR left_seq > $3)",
                conv_id,
                last_seq,
                first_seq,
            )
        intervals = [
            (int(u), Interval(int(j), None if left is None else int(left))) for u, j, left in rows
        ]
        return {
            seq: frozenset(user for user, interval in intervals if interval.contains(seq))
            for seq in range(first_seq, last_seq + 1)
        }

    async def export_events(
        self, after: tuple[int, int] = (0, 0), limit: int = 1000
    ) -> list[Event]:
        check_limit(limit)
        conv_id, seq = after
        async with self._ctx.read("read_export") as conn:
            # A row-value comparison walks the (conv_id, seq) primary key from the position;
            # shredded conversations are left out in the query, so a page is never cut short
            # by events that cannot be opened.
            rows = await conn.fetch(
                f"SELECT {EVENT_COLUMNS} FROM events e JOIN conversations c ON c.id = e.conv_id"
                " WHERE (e.conv_id, e.seq) > ($1, $2) AND c.shredded_at IS NULL"
                " ORDER BY e.conv_id, e.seq LIMIT $3",
                conv_id,
                seq,
                limit,
            )
            return await open_events_txn(conn, self._ctx.keys, rows)
