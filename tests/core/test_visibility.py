"""The reference visibility and window rule (:mod:`chatd.core.visibility`) on its own: edge
cases by hand, and the rule's invariants on random logs the conversation rules could write.

Whether the store's SQL says the same is ``tests/store/test_properties.py``'s to check.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chatd.core import visibility as v
from chatd.core.errors import ConversationNotFound
from chatd.core.events import Event, EventKind
from chatd.core.records import EventPage, Interval

CONV = 7
ALICE, BOB, CAROL, DAN = 1, 2, 3, 4
USERS = (ALICE, BOB, CAROL, DAN)


class Log:
    """A conversation's log, written event by event."""

    def __init__(self, creator: int, *others: int) -> None:
        self.events: list[Event] = []
        self.add(EventKind.CREATED, creator, {"name": "n", "members": [creator, *others]})

    def add(self, kind: str, sender: int, payload: dict[str, Any]) -> int:
        seq = len(self.events) + 1
        self.events.append(Event(CONV, seq, kind, sender, 1000 + seq, payload))
        return seq

    def message(self, sender: int) -> int:
        return self.add(EventKind.MESSAGE, sender, {"text": "hi", "tag": None})

    def joined(self, sender: int, user: int) -> int:
        return self.add(EventKind.JOINED, sender, {"user": user})

    def left(self, user: int) -> int:
        return self.add(EventKind.LEFT, user, {"user": user})

    def renamed(self, sender: int) -> int:
        return self.add(EventKind.RENAMED, sender, {"name": "m"})

    def intervals(self, user: int) -> tuple[Interval, ...]:
        return v.intervals_from_log(self.events).get(user, ())

    def seqs(self, page: EventPage) -> list[int]:
        assert page.conv_id == CONV
        return [e.seq for e in page.events]


# ----------------------------------------------------------------------------- intervals


def test_intervals_open_at_created_and_joined_and_close_after_left() -> None:
    log = Log(ALICE, BOB)
    log.message(ALICE)  # 2
    log.left(BOB)  # 3
    log.message(ALICE)  # 4
    log.joined(ALICE, BOB)  # 5
    log.joined(ALICE, CAROL)  # 6
    assert v.intervals_from_log(log.events) == {
        ALICE: (Interval(1, None),),
        BOB: (Interval(1, 4), Interval(5, None)),
        CAROL: (Interval(6, None),),
    }
    bob = log.intervals(BOB)
    assert [s for s in range(1, 7) if v.visible(bob, s)] == [1, 2, 3, 5, 6]
    assert not v.visible((), 1)
    assert v.is_member(bob) and not v.is_member(()) and not v.is_member((Interval(1, 4),))


def test_the_log_may_come_in_any_order() -> None:
    log = Log(ALICE, BOB)
    log.left(BOB)
    log.joined(ALICE, BOB)
    assert v.intervals_from_log(reversed(log.events)) == v.intervals_from_log(log.events)


def test_a_log_the_rules_could_not_write_is_refused() -> None:
    log = Log(ALICE, BOB)
    log.joined(ALICE, BOB)
    with pytest.raises(ValueError, match="joins while a member"):
        v.intervals_from_log(log.events)
    log = Log(ALICE, BOB)
    log.left(CAROL)
    with pytest.raises(ValueError, match="leaves without being a member"):
        v.intervals_from_log(log.events)


def test_audience_includes_the_leaver_at_their_left_event_but_not_the_members_after() -> None:
    log = Log(ALICE, BOB)
    left = log.left(BOB)
    joined = log.joined(ALICE, CAROL)
    everyone = v.intervals_from_log(log.events)
    assert v.audience(everyone, left) == {ALICE, BOB}
    assert v.members_after(everyone, left) == {ALICE}
    assert v.audience(everyone, joined) == v.members_after(everyone, joined) == {ALICE, CAROL}
    assert v.audience(everyone, 1) == {ALICE, BOB}
    assert v.audience({}, 1) == frozenset()


def test_top_is_the_last_seq_for_a_member_and_the_left_event_for_a_leaver() -> None:
    log = Log(ALICE, BOB)
    left = log.left(BOB)
    log.message(ALICE)
    assert v.top(log.intervals(ALICE), 3) == 3
    assert v.top(log.intervals(BOB), 3) == left
    assert v.top((), 3) == 0


# ----------------------------------------------------------------------------- the window


def test_a_window_bigger_than_the_history_starts_at_the_first_join() -> None:
    log = Log(ALICE, BOB)
    log.message(ALICE)
    log.joined(ALICE, CAROL)
    log.message(CAROL)
    carol = log.intervals(CAROL)
    assert v.window_start(log.events, carol, 200) == 3
    page = v.window_page(CONV, log.events, carol, 200)
    assert page == EventPage(CONV, tuple(log.events[2:]), False, False, 3)


def test_the_window_starts_after_the_window_plus_first_newest_message() -> None:
    log = Log(ALICE, BOB)
    for _ in range(3):
        log.message(ALICE)  # 2, 3, 4
    log.renamed(BOB)  # 5: a system event after the last archived message stays
    log.message(BOB)  # 6
    log.message(ALICE)  # 7
    bob = log.intervals(BOB)
    assert v.window_start(log.events, bob, 2) == 5
    page = v.window_page(CONV, log.events, bob, 2)
    assert (log.seqs(page), page.archived, page.has_more) == ([5, 6, 7], True, False)
    assert v.window_start(log.events, bob, 0) == 8  # no message at all: only what follows
    assert v.window_start(log.events, bob, 5) == 1  # exactly the window: nothing archived
    assert v.window_start(log.events, (), 2) == 0


def test_a_leavers_window_counts_what_they_saw_and_stops_at_their_leave() -> None:
    log = Log(ALICE, BOB)
    log.message(ALICE)  # 2
    log.message(BOB)  # 3
    log.left(BOB)  # 4
    for _ in range(5):
        log.message(ALICE)  # 5..9: after Bob left, not his
    bob = log.intervals(BOB)
    page = v.window_page(CONV, log.events, bob, 1)
    assert (log.seqs(page), page.archived, page.window_start) == ([3, 4], True, 3)
    assert log.seqs(v.window_page(CONV, log.events, bob, 2)) == [1, 2, 3, 4]


def test_a_rejoined_user_counts_messages_of_both_intervals_only() -> None:
    log = Log(ALICE, BOB)
    log.message(ALICE)  # 2
    log.left(BOB)  # 3
    log.message(ALICE)  # 4: unseen
    log.message(ALICE)  # 5: unseen
    log.joined(ALICE, BOB)  # 6
    log.message(ALICE)  # 7
    bob = log.intervals(BOB)
    assert v.window_start(log.events, bob, 1) == 3  # after message 2, his second newest
    page = v.page_after(CONV, log.events, bob, 1, 0, 10)
    assert (log.seqs(page), page.archived) == ([3, 6, 7], True)
    # Between the intervals nothing is skipped that Bob could see: not archived.
    page = v.page_after(CONV, log.events, bob, 1, 3, 10)
    assert (log.seqs(page), page.archived) == ([6, 7], False)


def test_the_window_read_returns_at_most_window_plus_extra_events() -> None:
    log = Log(ALICE, BOB)
    log.message(ALICE)  # 2
    for _ in range(3):
        log.renamed(ALICE)  # 3, 4, 5
    alice = log.intervals(ALICE)
    page = v.window_page(CONV, log.events, alice, 1, extra=2)
    assert (log.seqs(page), page.archived, page.has_more, page.window_start) == (
        [3, 4, 5],
        False,
        True,
        1,
    )


def test_a_conversation_one_was_never_in_does_not_exist() -> None:
    log = Log(ALICE, BOB)
    with pytest.raises(ConversationNotFound):
        v.window_page(CONV, log.events, (), 200)
    with pytest.raises(ConversationNotFound):
        v.page_after(CONV, log.events, (), 200, 0, 10)
    with pytest.raises(ConversationNotFound):
        v.page_before(CONV, log.events, (), 200, 10, 10)
    with pytest.raises(ValueError, match="at least one"):
        v.page_after(CONV, log.events, log.intervals(ALICE), 200, 0, 0)


# ----------------------------------------------------------------------------- pages


def test_pages_after_say_archived_only_when_they_skip_what_was_visible() -> None:
    log = Log(ALICE, BOB)
    for _ in range(4):
        log.message(ALICE)  # 2..5
    bob = log.intervals(BOB)
    start = v.window_start(log.events, bob, 2)
    assert start == 4
    assert v.page_after(CONV, log.events, bob, 2, 0, 1) == EventPage(
        CONV, (log.events[3],), True, True, 4
    )
    assert v.page_after(CONV, log.events, bob, 2, 3, 5).archived is False  # 3: just before
    assert v.page_after(CONV, log.events, bob, 2, 2, 5).archived is True
    assert v.page_after(CONV, log.events, bob, 2, 5, 5) == EventPage(CONV, (), False, False, 4)


def test_pages_before_say_archived_when_they_reach_the_window_start() -> None:
    log = Log(ALICE, BOB)
    for _ in range(4):
        log.message(ALICE)  # 2..5
    bob = log.intervals(BOB)
    newest = v.page_before(CONV, log.events, bob, 2, 100, 1)
    assert (log.seqs(newest), newest.archived, newest.has_more) == ([5], False, True)
    both = v.page_before(CONV, log.events, bob, 2, 100, 2)
    assert (log.seqs(both), both.archived, both.has_more) == ([4, 5], True, False)
    empty = v.page_before(CONV, log.events, bob, 2, 4, 3)
    assert (log.seqs(empty), empty.archived, empty.has_more) == ([], True, False)
    small = v.page_before(CONV, log.events, bob, 200, 100, 10)
    assert (log.seqs(small), small.archived) == ([1, 2, 3, 4, 5], False)


# ----------------------------------------------------------------------------- read markers


def test_read_markers_move_forward_within_what_the_user_may_see() -> None:
    assert v.read_marker(0, 5, 9) == 5
    assert v.read_marker(5, 3, 9) == 5
    assert v.read_marker(5, 50, 9) == 9
    assert v.read_marker(0, -4, 9) == 0


def test_unread_counts_others_messages_after_the_marker_up_to_the_window() -> None:
    log = Log(ALICE, BOB)
    log.message(ALICE)  # 2
    log.message(BOB)  # 3: Bob's own
    log.message(ALICE)  # 4
    log.renamed(ALICE)  # 5: not a message
    log.message(ALICE)  # 6
    log.left(BOB)  # 7
    log.message(ALICE)  # 8: after Bob left
    bob = log.intervals(BOB)
    assert v.unread(log.events, bob, BOB, 0, 200) == 3
    assert v.unread(log.events, bob, BOB, 0, 2) == 2
    assert v.unread(log.events, bob, BOB, 4, 200) == 1
    assert v.unread(log.events, (), BOB, 0, 200) == 0


# ----------------------------------------------------------------------------- invariants


@st.composite
def logs(draw: st.DrawFn) -> list[Event]:
    """A log the conversation rules could write: only members act, only non-members are
    added, only oneself leaves; it ends when nobody is left."""
    creator = draw(st.sampled_from(USERS))
    others = draw(st.sets(st.sampled_from(USERS), min_size=1)) - {creator} or {creator % 4 + 1}
    log = Log(creator, *sorted(others))
    members = {creator, *others}
    steps = st.tuples(
        st.sampled_from(["message", "message", "message", "joined", "left", "renamed"]),
        st.sampled_from(USERS),
        st.sampled_from(USERS),
    )
    for kind, actor, target in draw(st.lists(steps, max_size=40)):
        if not members:
            break
        actor = actor if actor in members else min(members)
        if kind == "joined" and target not in members:
            log.joined(actor, target)
            members.add(target)
        elif kind == "left":
            log.left(actor)
            members.discard(actor)
        elif kind == "renamed":
            log.renamed(actor)
        else:
            log.message(actor)
    return log.events


def member_after_or_own_leave(log: list[Event], user: int) -> list[int]:
    """The seqs ``user`` may see, by walking the log: member right after the event, or the
    event is their own leave (independent of interval arithmetic)."""
    member, seqs = False, []
    for e in log:
        if e.kind == EventKind.CREATED:
            member = user in e.payload["members"]
        elif e.kind in (EventKind.JOINED, EventKind.LEFT) and e.payload["user"] == user:
            member = e.kind == EventKind.JOINED
            if not member:
                seqs.append(e.seq)
        if member:
            seqs.append(e.seq)
    return seqs


windows = st.integers(0, 6)


@given(log=logs())
def test_one_sees_what_happened_while_a_member_and_ones_own_leave(log: list[Event]) -> None:
    everyone = v.intervals_from_log(log)
    for user in USERS:
        mine = everyone.get(user, ())
        assert [e.seq for e in v.visible_events(log, mine)] == member_after_or_own_leave(log, user)
        for interval in mine:
            if interval.left_seq is not None:  # the last seq of the interval is the leave
                last = log[interval.left_seq - 2]
                assert (last.kind, last.payload["user"]) == (EventKind.LEFT, user)
                assert not interval.contains(interval.left_seq)


@given(log=logs())
def test_the_audience_is_who_may_see(log: list[Event]) -> None:
    everyone = v.intervals_from_log(log)
    for e in log:
        audience = v.audience(everyone, e.seq)
        assert audience == {u for u in USERS if v.visible(everyone.get(u, ()), e.seq)}
        leaver = {e.payload["user"]} if e.kind == EventKind.LEFT else set()
        assert audience == v.members_after(everyone, e.seq) | leaver


@given(log=logs(), window=windows)
def test_the_window_holds_at_most_window_messages(log: list[Event], window: int) -> None:
    everyone = v.intervals_from_log(log)
    for mine in everyone.values():
        seen = v.visible_events(log, mine)
        page = v.window_page(CONV, log, mine, window)
        assert page.events == tuple(e for e in seen if e.seq >= page.window_start)
        held = sum(1 for e in page.events if e.kind == EventKind.MESSAGE)
        assert held == window if page.archived else held <= window
        assert page.archived == (page.events != seen)
        older = [e for e in seen if e.seq < page.window_start]
        assert not older or older[-1].kind == EventKind.MESSAGE  # cut right after a message


@given(log=logs(), window=windows)
def test_the_window_only_moves_forward_as_the_log_grows(log: list[Event], window: int) -> None:
    starts: dict[int, int] = {}
    for end in range(1, len(log) + 1):
        for user, mine in v.intervals_from_log(log[:end]).items():
            start = v.window_start(log[:end], mine, window)
            assert start >= starts.get(user, 0)
            starts[user] = start


@given(log=logs(), window=windows, limit=st.integers(1, 4))
def test_pages_concatenate_to_the_window(log: list[Event], window: int, limit: int) -> None:
    for mine in v.intervals_from_log(log).values():
        whole = v.window_page(CONV, log, mine, window)
        forward: list[Event] = []
        page = v.page_after(CONV, log, mine, window, 0, limit)
        assert page.archived == whole.archived
        while True:
            assert page.window_start == whole.window_start
            forward += page.events
            if not page.has_more:
                break
            page = v.page_after(CONV, log, mine, window, page.events[-1].seq, limit)
            assert not page.archived
        assert tuple(forward) == whole.events
        backward: list[Event] = []
        before = log[-1].seq + 1
        while True:
            page = v.page_before(CONV, log, mine, window, before, limit)
            backward = [*page.events, *backward]
            if not page.has_more:
                assert page.archived == whole.archived
                break
            assert not page.archived
            before = page.events[0].seq
        assert tuple(backward) == whole.events


@given(log=logs(), window=windows, read=st.integers(-1, 50))
def test_unread_is_capped_at_the_window(log: list[Event], window: int, read: int) -> None:
    for user, mine in v.intervals_from_log(log).items():
        count = v.unread(log, mine, user, read, window)
        others = [
            e
            for e in v.visible_events(log, mine)
            if e.kind == EventKind.MESSAGE and e.sender != user and e.seq > read
        ]
        assert count == min(len(others), window)
        marker = v.read_marker(0, read, v.top(mine, log[-1].seq))
        assert 0 <= marker <= v.top(mine, log[-1].seq)
