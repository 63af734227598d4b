"""The clear columns that repeat what the log says, or must agree with other rows: checked by
``chatd verify`` in its chain walk, where the log is already at hand.

No chain, seal or row MAC covers them, and a changed value there is not harmless:

* ``conversations.last_event_at`` picks what retention crypto-shreds (an old-looking value
  gets a live conversation destroyed, irreversibly); it is the time of the last event, as
  ``created_at`` is the time of the first and ``last_message_seq`` the seq of the last
  ``message`` (0 if none): the planner writes them with the events of the same batch;
* ``shredded_at`` is set exactly when the conversation's data keys are destroyed, and the
  shredding job writes both with one time (a set ``shredded_at`` over live keys hides a live
  conversation from every reader; a destroyed key under an unset one is a lost log);
* ``idempotency_keys``: every append is one operation with one row, never deleted, whose
  ``(conv_id, first_seq, last_seq)`` are that operation's events, all of its ``sender`` and
  all of one time (a batch's).  So the rows of a conversation cover its log exactly, in
  order: the creation's (``scope_conv`` 0) from seq 1, every other's with ``scope_conv`` the
  conversation.  A changed range would answer a retry with the wrong events; and since the
  chain hash does not cover an event's sender and time (its seal does, which a shredded
  conversation no longer has), the operation row is what still vouches for the sender;
* a data key's ``created_at`` is its conversation's (and an attachment's, its upload's; the
  audit log's, its first record's): written in the same transaction with one time.

:class:`OperationCheck` and :func:`conversation_problem` are plain rules on values already
read, the same on every backend; each backend's ``consistency`` module reads the rows
(:mod:`chatd.store.sqlite.consistency`, :mod:`chatd.store.postgres.consistency`).  A value
of a type chatd never writes is a mismatch, never an exception.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from chatd.core.events import EventKind
from chatd.i18n import N_

NO_OPERATION = N_("no operation record (idempotency key) covers this event")
BAD_OPERATION = N_("an operation record (idempotency key) does not fit the log here")
OTHER_SENDER = N_("the event's sender differs from its operation record's")
OTHER_TIME = N_("the events of one operation carry different times")

IdemRow = tuple[Any, ...]  # scope_conv, sender, conv_id, first_seq, last_seq


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(slots=True)
class _Operation:
    sender: object
    last: int
    ts: object = None


class OperationCheck:
    """The operation rows of one conversation against its events, walked in seq order.

    Rows are fed in ``first_seq`` order (:meth:`add_rows`, an empty page when there are no
    more) as :meth:`needs_rows` asks; each event is :meth:`see`-n; :meth:`finish` ends.
    The first problem is kept as ``(seq, sentence)``."""

    def __init__(self, conv_id: int, creations: Sequence[IdemRow]) -> None:
        self.conv_id = conv_id
        self.problem: tuple[int, str] | None = None
        self._pending: deque[IdemRow] = deque(creations)
        self._exhausted = False
        self._current: _Operation | None = None
        self._next = 1  # the seq the next operation must start at
        if len(creations) > 1:
            self.problem = (1, BAD_OPERATION)  # one creation per conversation

    def needs_rows(self, seq: int) -> bool:
        current = self._current
        return not self._pending and not self._exhausted and (current is None or seq > current.last)

    def add_rows(self, rows: Iterable[IdemRow]) -> None:
        before = len(self._pending)
        self._pending.extend(rows)
        if len(self._pending) == before:
            self._exhausted = True

    def _take(self, seq: int) -> _Operation | None:
        if not self._pending:
            self.problem = (seq, NO_OPERATION)
            return None
        scope, sender, conv_id, first, last = self._pending.popleft()
        creation = scope == 0
        fits = (
            all(_is_int(v) for v in (scope, conv_id, first, last))
            and conv_id == self.conv_id
            and (creation or scope == self.conv_id)
            and first == self._next == seq
            and last >= first
            and creation == (first == 1)
        )
        if not fits:
            self.problem = (seq, BAD_OPERATION)
            return None
        self._next = last + 1
        return _Operation(sender, last)

    def see(self, seq: int, sender: object, ts: object) -> None:
        if self.problem is not None:
            return
        current = self._current
        if current is None or seq > current.last:
            current = self._current = self._take(seq)
            if current is None:
                return
            current.ts = ts
        if sender != current.sender:
            self.problem = (seq, OTHER_SENDER)
        elif ts != current.ts:
            self.problem = (seq, OTHER_TIME)

    def finish(self, last_seq: int, more_rows: bool) -> None:
        """The log ended at ``last_seq``; ``more_rows``: rows are left unread."""
        if self.problem is not None:
            return
        current = self._current
        if (current is not None and current.last != last_seq) or self._pending or more_rows:
            self.problem = (last_seq, BAD_OPERATION)
        elif current is None and last_seq > 0:
            self.problem = (1, NO_OPERATION)


@dataclass(slots=True)
class LogFacts:
    """What the walk saw of one conversation's log that its row repeats."""

    first_ts: object = None
    last_ts: object = None
    last_message_seq: int = 0

    def see(self, seq: int, kind: object, ts: object) -> None:
        if seq == 1:
            self.first_ts = ts
        self.last_ts = ts
        if kind == EventKind.MESSAGE:
            self.last_message_seq = seq


KeyRow = tuple[Any, ...]  # version, created_at, destroyed_at


def conversation_problem(
    conv: Sequence[Any], facts: LogFacts, keys: Sequence[KeyRow]
) -> str | None:
    """The first disagreement of a conversation's row (``created_at, last_event_at,
    last_message_seq, shredded_at``) with its log and its data keys, or None."""
    created_at, last_event_at, last_message_seq, shredded_at = conv
    if created_at != facts.first_ts:
        return N_("the conversation's creation time differs from its first event's")
    if last_event_at != facts.last_ts:
        return N_("the conversation's last activity time differs from its last event's")
    if last_message_seq != facts.last_message_seq:
        return N_("the conversation's last message seq differs from the log's")
    if not keys:
        return N_("the conversation has no data key")
    destroyed = [row[2] for row in keys]
    if shredded_at is None and any(at is not None for at in destroyed):
        return N_("a data key of the conversation is destroyed but it is not marked shredded")
    if shredded_at is not None and any(at is None for at in destroyed):
        return N_("the conversation is marked shredded but a data key of it is live")
    if shredded_at is not None and any(at != shredded_at for at in destroyed):
        return N_(
            "the conversation's data keys were destroyed at another time than it was shredded"
        )
    first_key = [row for row in keys if row[0] == 1]
    if not first_key or first_key[0][1] != created_at:
        return N_("the conversation's first data key was not made with it")
    return None
