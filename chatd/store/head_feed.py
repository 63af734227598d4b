"""The heads that moved: how a gateway node learns of appends the broker did not bring it.

The broker is a fast path (:mod:`chatd.broker.base`): a pointer another node published can
be lost (NATS restarting, a node reconnecting after the publisher sent, a slow consumer
cut off by the NATS server).  Each connection's cursors fill a gap when the conversation's
*next* event arrives, but a conversation that goes quiet after a lost pointer would leave
its last events undelivered until the client resumes.  So every node also asks the store,
at a steady pace, which conversations' heads moved, and hands the ones it was not told
about to its fan-out (:class:`chatd.gateway.head_poll.HeadPoller`).

The contract is small on purpose: a :class:`HeadWatch` made by :meth:`HeadFeed.head_watch`
starts from the database as it is when it is made and, at each :meth:`HeadWatch.moved`,
names every conversation whose head moved since the previous call, with its last seq now.
It may name a conversation again that did not move since (the caller compares seqs: the
fan-out keeps the last seq it was handed per conversation); it never leaves one out.

How each backend keeps "never leaves one out":

* **PostgreSQL** (:mod:`chatd.store.postgres.head_watch`): several nodes append, so the
  watch reads ``conversations.head_version`` (bumped by a trigger, from a sequence, on every
  head change of every node) above a watermark that lags, because sequence values do not
  commit in the order they are drawn (the rule of
  :class:`chatd.store.postgres.history.Watermark`).
* **SQLite** (:mod:`chatd.store.sqlite.head_watch`): one process appends to a database (the
  ``chatd serve`` lock; no admin command appends to a conversation), so the writer's own
  commits are the whole truth and feed an in-memory journal, in commit order.
"""

from __future__ import annotations

from typing import Protocol


class HeadWatch(Protocol):
    async def moved(self) -> dict[int, int]:
        """Every conversation whose head moved since the previous call (the first call:
        since the watch was made) → its last seq now.  May repeat one that did not move."""
        ...


class HeadFeed(Protocol):
    async def head_watch(self) -> HeadWatch:
        """A watch that starts from the heads as they are now."""
        ...
