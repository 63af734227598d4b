"""The hash chain as a user may see it: what ``sync`` tells a client about the hashes it holds.

The counterpart of :mod:`chatd.store.sqlite.heads`.  A client remembers the chain hash of the
last event it saw in each conversation and sends it back in ``sync`` (``docs/protocol.md``
§9.2).  :func:`chain_views_txn` answers, for each ``(conv, seq)``, with the hash at that seq
and the user's head — both under the visibility rule of every read
(:data:`~chatd.store.postgres.log.VISIBLE`, the latest membership interval for the head), so
that a leaver never learns a hash after their ``left`` event.
:func:`chatd.core.visibility.chain_view` is the rule this SQL implements.

One statement for all the positions of a ``sync``, run in the caller's read transaction (one
snapshot): the positions go in as three arrays (``unnest``), so there is no variable limit to
chunk around, as there is on SQLite.
"""

from __future__ import annotations

from collections.abc import Sequence

from chatd.core.records import ChainView
from chatd.store.postgres.db import Connection
from chatd.store.postgres.log import LATEST_INTERVALS, VISIBLE

# $1 the user; $2, $3, $4 the positions' indexes, conversations and seqs.
CHAIN_VIEWS = (
    f"WITH latest AS ({LATEST_INTERVALS})"
    " SELECT k.i,"
    " (SELECT e.hash FROM events e WHERE e.conv_id = k.c AND e.seq = k.s"
    f"  AND {VISIBLE}),"
    " l.top,"
    " (SELECT h.hash FROM events h WHERE h.conv_id = k.c AND h.seq = l.top)"
    " FROM unnest($2::bigint[], $3::bigint[], $4::bigint[]) AS k(i, c, s)"
    " LEFT JOIN latest l ON l.conv_id = k.c"
)


async def chain_views_txn(
    conn: Connection, user_id: int, positions: Sequence[tuple[int, int]]
) -> list[ChainView]:
    """The :class:`ChainView` of each position, in the order given."""
    if not positions:
        return []
    found: dict[int, tuple[bytes | None, int, bytes | None]] = {}
    for i, at, top, head in await conn.fetch(
        CHAIN_VIEWS,
        user_id,
        list(range(len(positions))),
        [int(conv_id) for conv_id, _ in positions],
        [int(seq) for _, seq in positions],
    ):
        known = head is not None
        found[int(i)] = (
            None if at is None else bytes(at),
            int(top) if known else 0,
            bytes(head) if known else None,
        )
    views: list[ChainView] = []
    for n, (conv_id, seq) in enumerate(positions):
        at, head_seq, head = found.get(n, (None, 0, None))
        views.append(ChainView(conv_id, seq, at, head_seq, head))
    return views
