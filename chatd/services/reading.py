"""What a user may read of the log: history pages, catch-up, sync heads, chain hashes,
fan-out audiences, the events another node's pointer names, the heads that moved.

Visibility is decided by the store's queries (the user's membership intervals and the
visible window, :mod:`chatd.core.visibility` is the rule they implement); this service is
the gateway's only way to them, so that a transport never calls a store.
"""

from __future__ import annotations

from collections.abc import Sequence

from chatd.core.events import Event
from chatd.core.records import ChainView, ConversationHead, EventPage
from chatd.store.contract import LogStore
from chatd.store.head_feed import HeadWatch


class Reading:
    def __init__(self, store: LogStore) -> None:
        self._store = store

    @property
    def window_size(self) -> int:
        """How many messages a user may read back (the visible window)."""
        return self._store.window_size

    @property
    def epoch(self) -> str:
        """The id of the history the seqs belong to, announced in ``hello``."""
        return self._store.epoch

    def trusted_positions(
        self, epoch: str | None, positions: dict[int, int]
    ) -> tuple[dict[int, int], bool]:
        """The positions a ``sync`` resumes from, and whether the epoch changed: seqs received
        in another epoch may name events this history never had (or other ones), so they are
        dropped and every conversation is resent from its window.  A ``sync`` naming no epoch
        (an older client) is trusted as before."""
        if epoch is None or epoch == self._store.epoch:
            return positions, False
        return {}, True

    async def after(self, user_id: int, conv_id: int, after_seq: int, limit: int) -> EventPage:
        return await self._store.events_after(user_id, conv_id, after_seq, limit)

    async def before(self, user_id: int, conv_id: int, before_seq: int, limit: int) -> EventPage:
        return await self._store.events_before(user_id, conv_id, before_seq, limit)

    async def heads(self, user_id: int) -> list[ConversationHead]:
        """Every conversation the user is or was in, with the last seq they may see."""
        return await self._store.conversation_heads(user_id)

    async def chain_views(
        self, user_id: int, positions: Sequence[tuple[int, int]]
    ) -> list[ChainView]:
        """What the log says of the hashes a client holds (``sync``'s ``heads``), as far as
        the user may see; one store read for all of them."""
        if not positions:
            return []
        return await self._store.chain_views(user_id, positions)

    async def audience(
        self, conv_id: int, first_seq: int, last_seq: int
    ) -> dict[int, frozenset[int]]:
        """Who may read each of these seqs (the fan-out's routing, never the client's)."""
        return await self._store.audience(conv_id, first_seq, last_seq)

    async def head_watch(self) -> HeadWatch:
        """A watch of the heads that move from now on, whichever node appends: the head
        poll's (:mod:`chatd.gateway.head_poll`), the broker's fallback."""
        return await self._store.head_watch()

    async def committed_events(self, conv_id: int, first_seq: int, last_seq: int) -> list[Event]:
        """The events ``first_seq``..``last_seq`` of a conversation, opened, for the fan-out
        of a pointer another node published (the broker carries no content).  No visibility
        filter: the fan-out routes each event to its :meth:`audience` only.  A shredded
        conversation gives nothing."""
        events: list[Event] = []
        after = first_seq - 1
        while after < last_seq:
            page = await self._store.export_events((conv_id, after), min(1000, last_seq - after))
            inside = [e for e in page if e.conv_id == conv_id and e.seq <= last_seq]
            events.extend(inside)
            if len(inside) < len(page) or not inside:
                break  # past the range, or the end of the log
            after = inside[-1].seq
        return events
