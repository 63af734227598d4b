"""The hash chain as a user may see it: what ``sync`` tells a client about the hashes it holds.

A client remembers the chain hash of the last event it saw in each conversation and sends it
back in ``sync`` (``docs/protocol.md`` §9.2).  :func:`chain_views_txn` answers, for each
``(conv, seq)``, with the hash at that seq and the user's head — both under the visibility
rule of every read (:data:`~chatd.store.sqlite.log.VISIBLE`, the latest membership interval
for the head), so that a leaver never learns a hash after their ``left`` event.
:func:`chatd.core.visibility.chain_view` is the rule this SQL implements.

One read transaction for all the conversations of a ``sync``, in chunks that stay under
SQLite's variable limit.
"""

from __future__ import annotations

from collections.abc import Sequence

import aiosqlite

from chatd.core.records import ChainView
from chatd.store.sqlite.inbox import LATEST_INTERVALS
from chatd.store.sqlite.log import VISIBLE

_CHUNK = 300  # positions per query: 3 variables each, well under SQLite's limit


def _chunk_sql(count: int) -> str:
    values = ",".join(f"(:i{n}, :c{n}, :s{n})" for n in range(count))
    return (
        f"WITH k(i, c, s) AS (VALUES {values}), latest AS ({LATEST_INTERVALS})"
        " SELECT k.i,"
        " (SELECT e.hash FROM events e WHERE e.conv_id = k.c AND e.seq = k.s"
        f"  AND {VISIBLE}),"
        " l.top,"
        " (SELECT h.hash FROM events h WHERE h.conv_id = k.c AND h.seq = l.top)"
        " FROM k LEFT JOIN latest l ON l.conv_id = k.c"
    )


async def chain_views_txn(
    conn: aiosqlite.Connection, user_id: int, positions: Sequence[tuple[int, int]]
) -> list[ChainView]:
    """The :class:`ChainView` of each position, in the order given."""
    views: list[ChainView] = []
    for start in range(0, len(positions), _CHUNK):
        chunk = positions[start : start + _CHUNK]
        params: dict[str, int] = {"user": user_id}
        for n, (conv_id, seq) in enumerate(chunk):
            params.update({f"i{n}": n, f"c{n}": conv_id, f"s{n}": seq})
        found: dict[int, tuple[bytes | None, int, bytes | None]] = {}
        for i, at, top, head in await conn.execute_fetchall(_chunk_sql(len(chunk)), params):
            known = head is not None
            found[int(i)] = (
                None if at is None else bytes(at),
                int(top) if known else 0,
                bytes(head) if known else None,
            )
        for n, (conv_id, seq) in enumerate(chunk):
            at, head_seq, head = found.get(n, (None, 0, None))
            views.append(ChainView(conv_id, seq, at, head_seq, head))
    return views
