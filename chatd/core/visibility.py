"""Who may read what of a conversation: the visibility and window rule, as plain functions.

This module is the reference.  The SQL of every store backend must say exactly what these
functions say (``VISIBLE``, the window start, the pages, the audience, the unread count), and
the tests use them as their oracle: ``tests/store/test_properties.py`` compares every read
path of every backend with them on random logs.  Nothing here is fast; everything is plain.

The rule, in four parts:

*Intervals.*  A user may read the events of a conversation whose seq lies in one of their
membership intervals ``[joined_seq, left_seq)``.  The ``created`` event opens an interval for
each member, ``joined`` opens one for the user added, ``left`` closes the leaver's at
``left_seq = seq + 1``: a leaver sees their own ``left`` event and nothing after it.  Someone
added again gets a new interval; what happened while they were away stays unseen.

*Window.*  Reads are limited to the user's visible window: their ``window`` most recent
visible *messages* and every event after the newest message left out.  It starts right after
the user's ``(window + 1)``-th most recent visible message, which is then *archived* with all
visible events before it: never served, always said (``archived``), never silently cut.  With
``window`` visible messages or fewer nothing is archived and the window starts at the user's
first joined seq.  A leaver's window is counted among what they saw, up to their leave.

*Pages.*  :func:`window_page`, :func:`page_after` and :func:`page_before` are the store's
``visible_window``, ``events_after`` and ``events_before``, field for field (see
:class:`~chatd.core.records.EventPage`).

*Unread.*  A user's unread count is the number of visible messages after their read marker
not sent by themselves, counted up to ``window`` (older ones are archived: nobody can read
them).  A marker only moves forward, and never past the last seq the user may see.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence

from chatd.core.errors import ConversationNotFound
from chatd.core.events import Event, EventKind
from chatd.core.records import ChainView, EventPage, Interval

# How many events beyond the window's messages a window read returns at most (system events:
# joins, leaves, renames).  Every backend's window read uses this same number.
WINDOW_EXTRA_EVENTS = 1000

Intervals = Sequence[Interval]  # one user's intervals in one conversation, by joined_seq


# ---------------------------------------------------------------------------- intervals


def intervals_from_log(log: Iterable[Event]) -> dict[int, tuple[Interval, ...]]:
    """Every user's membership intervals, replayed from a conversation's events.

    Only ``created``, ``joined`` and ``left`` count.  A log the rules could not have written
    (an add of a current member, a leave of a non-member) raises :class:`ValueError`.
    """
    open_at: dict[int, int] = {}
    closed: dict[int, list[Interval]] = defaultdict(list)
    for event in sorted(log, key=lambda e: e.seq):
        if event.kind == EventKind.CREATED:
            joining = [int(user) for user in event.payload["members"]]
        elif event.kind == EventKind.JOINED:
            joining = [int(event.payload["user"])]
        elif event.kind == EventKind.LEFT:
            user = int(event.payload["user"])
            if user not in open_at:
                raise ValueError(f"seq {event.seq}: user {user} leaves without being a member")
            closed[user].append(Interval(open_at.pop(user), event.seq + 1))
            continue
        else:
            continue
        for user in joining:
            if user in open_at:
                raise ValueError(f"seq {event.seq}: user {user} joins while a member")
            open_at[user] = event.seq
    result = {user: list(spans) for user, spans in closed.items()}
    for user, joined_seq in open_at.items():
        result.setdefault(user, []).append(Interval(joined_seq, None))
    return {
        user: tuple(sorted(spans, key=lambda iv: iv.joined_seq))
        for user, spans in sorted(result.items())
    }


def visible(intervals: Intervals, seq: int) -> bool:
    """Whether a user with these intervals may read the event at ``seq``."""
    return any(interval.contains(seq) for interval in intervals)


def visible_events(log: Iterable[Event], intervals: Intervals) -> tuple[Event, ...]:
    """The events of ``log`` a user with these intervals may read, in seq order."""
    return tuple(sorted((e for e in log if visible(intervals, e.seq)), key=lambda e: e.seq))


def audience(intervals_by_user: Mapping[int, Intervals], seq: int) -> frozenset[int]:
    """Who may read the event at ``seq``: whose fan-out receives it."""
    return frozenset(user for user, spans in intervals_by_user.items() if visible(spans, seq))


def is_member(intervals: Intervals) -> bool:
    """Whether the user is a member now (their latest interval is still open)."""
    return bool(intervals) and intervals[-1].left_seq is None


def members_after(intervals_by_user: Mapping[int, Intervals], seq: int) -> frozenset[int]:
    """The members right after the event at ``seq`` (a user whose ``left`` is at ``seq`` is
    no longer one; a user ``joined`` at ``seq`` is)."""
    return frozenset(
        user
        for user, spans in intervals_by_user.items()
        if any(
            iv.joined_seq <= seq and (iv.left_seq is None or iv.left_seq > seq + 1) for iv in spans
        )
    )


def top(intervals: Intervals, last_seq: int) -> int:
    """The last seq the user may see: the conversation's ``last_seq`` while a member, their
    ``left`` event's seq otherwise; 0 without intervals."""
    if not intervals:
        return 0
    latest = intervals[-1]
    return last_seq if latest.left_seq is None else latest.left_seq - 1


def chain_view(conv_id: int, log: Iterable[Event], intervals: Intervals, seq: int) -> ChainView:
    """What a user is told of the hash chain at ``seq`` (``sync``'s ``heads``): the hash of
    the event there if they may see it, and the hash of the last event they may see (their
    ``left`` event for a leaver: never a later hash)."""
    events: dict[int, Event] = {int(e.seq): e for e in log}
    at = events.get(seq) if visible(intervals, seq) else None
    last_seq = max(events, default=0)
    head_seq = top(intervals, last_seq)
    head = events.get(head_seq) if head_seq else None
    return ChainView(
        conv_id,
        seq,
        None if at is None else at.hash,
        head_seq if head is not None else 0,
        None if head is None else head.hash,
    )


# ---------------------------------------------------------------------------- the window


def window_start(log: Iterable[Event], intervals: Intervals, window: int) -> int:
    """The lowest seq of the user's window: right after their ``(window + 1)``-th most recent
    visible message, else their first joined seq (0 without intervals).

    ``log`` may hold events the user may not see: only visible ones count.
    """
    if not intervals:
        return 0
    messages = [e.seq for e in visible_events(log, intervals) if e.kind == EventKind.MESSAGE]
    if len(messages) > window:
        return messages[-(window + 1)] + 1
    return min(iv.joined_seq for iv in intervals)


def archived_before(log: Iterable[Event], intervals: Intervals, start: int) -> bool:
    """Whether visible events lie before ``start`` (then archived: never served)."""
    return any(e.seq < start for e in visible_events(log, intervals))


def window_page(
    conv_id: int,
    log: Iterable[Event],
    intervals: Intervals,
    window: int,
    extra: int = WINDOW_EXTRA_EVENTS,
) -> EventPage:
    """``visible_window``: the whole window, at most ``window + extra`` events (the newest),
    ``has_more`` when older events of the window were left out."""
    seen = _seen(conv_id, log, intervals)
    start = window_start(seen, intervals, window)
    items = [e for e in seen if e.seq >= start]
    limit = window + extra
    page = items[-limit:]
    archived = archived_before(seen, intervals, start)
    return EventPage(conv_id, tuple(page), archived, len(items) > limit, start)


def page_after(
    conv_id: int,
    log: Iterable[Event],
    intervals: Intervals,
    window: int,
    after_seq: int,
    limit: int,
) -> EventPage:
    """``events_after``: the first ``limit`` window events after ``after_seq``; ``archived``
    when visible events between ``after_seq`` and the window were skipped."""
    _check_limit(limit)
    seen = _seen(conv_id, log, intervals)
    start = window_start(seen, intervals, window)
    skipped = any(after_seq < e.seq < start for e in seen)
    items = [e for e in seen if e.seq >= max(after_seq + 1, start)]
    return EventPage(conv_id, tuple(items[:limit]), skipped, len(items) > limit, start)


def page_before(
    conv_id: int,
    log: Iterable[Event],
    intervals: Intervals,
    window: int,
    before_seq: int,
    limit: int,
) -> EventPage:
    """``events_before``: the last ``limit`` window events before ``before_seq``, in seq
    order; ``archived`` when the page reaches the window's start and older events exist."""
    _check_limit(limit)
    seen = _seen(conv_id, log, intervals)
    start = window_start(seen, intervals, window)
    items = [e for e in seen if start <= e.seq < before_seq]
    has_more = len(items) > limit
    archived = archived_before(seen, intervals, start) and not has_more
    return EventPage(conv_id, tuple(items[-limit:]), archived, has_more, start)


def _seen(conv_id: int, log: Iterable[Event], intervals: Intervals) -> tuple[Event, ...]:
    """The visible events; a conversation one was never in does not exist for one."""
    if not intervals:
        raise ConversationNotFound(conv=conv_id)
    return visible_events(log, intervals)


def _check_limit(limit: int) -> None:
    if limit < 1:
        raise ValueError(f"a page holds at least one event, not {limit}")


# ---------------------------------------------------------------------------- read markers


def read_marker(current: int, asked: int, top_seq: int) -> int:
    """The marker after asking for ``asked``: forward only, within ``[0, top_seq]``."""
    return max(current, max(0, min(asked, top_seq)))


def unread(
    log: Iterable[Event], intervals: Intervals, user: int, read_seq: int, window: int
) -> int:
    """Visible messages after ``read_seq`` not sent by ``user``, counted up to ``window``.

    (The SQL also bounds them by the user's :func:`top`: no visible event lies beyond it.)
    """
    count = sum(
        1
        for e in visible_events(log, intervals)
        if e.seq > read_seq and e.kind == EventKind.MESSAGE and e.sender != user
    )
    return min(count, window)
