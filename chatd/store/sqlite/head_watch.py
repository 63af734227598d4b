"""The heads that moved, on SQLite: the writer's commits, journalled in memory in order.

One process appends to a SQLite database (the ``chatd serve`` lock keeps a second server
out, and no admin command appends to a conversation), so every head change passes through
this process's :class:`~chatd.store.sqlite.writer.GroupCommitWriter`, which tells the
journal after each commit (``on_commit``).  Each commit gets the next version; a watch
remembers the version it last read up to.  Nothing to read from the database, and exact.

Memory stays bounded: the journal keeps the newest :data:`JOURNAL_LIMIT` conversations.
A watch that falls behind the oldest forgotten version (more conversations moved between
two of its looks than the journal keeps) gets what is left, and a warning says so: the
sessions concerned then fill their gaps at the conversation's next event or at a resume,
as they would without the watch.
"""

from __future__ import annotations

import logging
from collections import OrderedDict

log = logging.getLogger("chatd.store")

JOURNAL_LIMIT = 100_000


class HeadJournal:
    """The newest conversations' last seqs, each with the version of the commit that moved it."""

    def __init__(self, limit: int = JOURNAL_LIMIT) -> None:
        self._limit = limit
        self.version = 0  # the last commit's version
        self.floor = 0  # moves at or below this version may have been forgotten
        self._heads: OrderedDict[int, tuple[int, int]] = OrderedDict()  # by version, oldest first

    def note(self, heads: dict[int, tuple[int, bytes]]) -> None:
        """A commit left these heads (conv → last seq, last hash): the writer's ``on_commit``."""
        self.version += 1
        for conv_id, (last_seq, _) in heads.items():
            self._heads[conv_id] = (self.version, last_seq)
            self._heads.move_to_end(conv_id)
        while len(self._heads) > self._limit:
            _, (version, _) = self._heads.popitem(last=False)
            self.floor = max(self.floor, version)

    def moved_after(self, version: int) -> dict[int, int]:
        """conv → last seq of every conversation moved by a commit after ``version``."""
        if version < self.floor:
            log.warning(
                "head watch fell behind the journal (%d conversations kept): some moves were"
                " forgotten, their sessions catch up at the next event",
                self._limit,
            )
        moved: dict[int, int] = {}
        for conv_id in reversed(self._heads):  # newest first: stop at the first one seen
            moved_at, last_seq = self._heads[conv_id]
            if moved_at <= version:
                break
            moved[conv_id] = last_seq
        return moved


class SqliteHeadWatch:
    def __init__(self, journal: HeadJournal) -> None:
        self._journal = journal
        self._since = journal.version

    async def moved(self) -> dict[int, int]:
        moved = self._journal.moved_after(self._since)
        self._since = self._journal.version
        return moved
