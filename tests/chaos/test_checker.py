"""The checker on hand-made histories: each kind of failure must be found, and a clean
history must pass.  Fast, no server."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from bench.chaos_harness.checker import check, percentile
from bench.chaos_harness.history import (
    Archived,
    History,
    Op,
    OpKind,
    OpType,
    Recv,
    SyncOk,
    SyncSent,
    marker_of,
    message_text,
)
from bench.chaos_harness.truth import LogEvent

ALICE, BOB, CAROL = 1, 2, 3
CONV = 10


@dataclass
class Scenario:
    """A history and a log, written step by step."""

    history: History = field(default_factory=lambda: History(window=200))
    log: list[LogEvent] = field(default_factory=list)
    _sessions: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    # ---- the log
    def created(self, seq: int, sender: int, *members: int) -> None:
        self.log.append(LogEvent(CONV, seq, "created", sender, members=(sender, *members)))

    def message(self, seq: int, sender: int, cmid: str) -> None:
        self.log.append(LogEvent(CONV, seq, "message", sender, cmid=cmid))

    def joined(self, seq: int, sender: int, user: int) -> None:
        self.log.append(LogEvent(CONV, seq, "joined", sender, subject=user))

    def left(self, seq: int, user: int) -> None:
        self.log.append(LogEvent(CONV, seq, "left", user, subject=user))

    # ---- operations
    def op(
        self,
        type_: OpType,
        user: int,
        cmid: str,
        *,
        f: OpKind = "send",
        seq: int | None = None,
        code: str | None = None,
        target: int | None = None,
    ) -> None:
        self.history.add(
            Op(self.history.now(), user, user, type_, f, cmid, CONV, seq, target, code)
        )

    def sent(self, user: int, cmid: str, seq: int) -> None:
        self.op("invoke", user, cmid)
        self.op("ok", user, cmid, seq=seq)

    # ---- sessions
    def session(self, user: int, held: int = 0, *, final: bool = False) -> int:
        sid = next(self._sessions)
        positions = ((CONV, held),) if held else ()
        self.history.add(SyncSent(self.history.now(), user, user, sid, positions, final))
        return sid

    def got(self, user: int, sid: int, seq: int) -> None:
        event = next(e for e in self.log if e.seq == seq)
        self.history.add(
            Recv(
                self.history.now(),
                user,
                user,
                sid,
                CONV,
                seq,
                event.kind,
                event.cmid,
                event.subject,
            )
        )

    def got_all(self, user: int, sid: int, *seqs: int) -> None:
        for seq in seqs:
            self.got(user, sid, seq)
        self.history.add(SyncOk(self.history.now(), user, user, sid))

    def archived(self, user: int, sid: int, window_start: int) -> None:
        self.history.add(Archived(self.history.now(), user, user, sid, CONV, window_start))

    def result(self) -> dict[str, int]:
        return check(self.history, self.log).bad()


def clean() -> Scenario:
    """Alice and Bob talk; Bob leaves; Carol is added; everyone got what they may see."""
    s = Scenario()
    s.created(1, ALICE, BOB)
    s.op("invoke", ALICE, "create", f="create")
    s.op("ok", ALICE, "create", f="create", seq=1)
    s.message(2, ALICE, "a1")
    s.sent(ALICE, "a1", 2)
    s.message(3, BOB, "b1")
    s.sent(BOB, "b1", 3)
    s.left(4, BOB)
    s.op("invoke", BOB, "leave", f="leave")
    s.op("ok", BOB, "leave", f="leave", seq=4)
    s.joined(5, ALICE, CAROL)
    s.op("invoke", ALICE, "add", f="add", target=CAROL)
    s.op("ok", ALICE, "add", f="add", seq=5, target=CAROL)
    s.message(6, ALICE, "a2")
    s.sent(ALICE, "a2", 6)
    s.got_all(ALICE, s.session(ALICE), 1, 2, 3, 4, 5, 6)
    s.got_all(BOB, s.session(BOB), 1, 2, 3, 4)
    s.got_all(CAROL, s.session(CAROL), 5, 6)
    return s


def bad_only(counts: dict[str, int]) -> dict[str, int]:
    return {k: v for k, v in counts.items() if v}


def test_a_clean_history_passes() -> None:
    s = clean()
    result = check(s.history, s.log)
    assert result.ok, result.problems
    assert (result.sent, result.acked, result.received) == (3, 3, 12)


def test_an_acked_message_missing_from_the_log_is_lost() -> None:
    s = clean()
    s.sent(BOB, "b-acked-then-lost", 7)  # the ack said seq 7; the log ends at 6
    assert bad_only(s.result()) == {"lost": 1}


def test_an_acked_message_at_another_seq_is_lost() -> None:
    s = clean()
    s.message(7, ALICE, "a3")
    s.sent(ALICE, "a3", 8)  # acked at 8, stored at 7
    s.got_all(ALICE, s.session(ALICE, 6), 7)
    s.got_all(CAROL, s.session(CAROL, 6), 7)
    assert bad_only(s.result()) == {"lost": 1}


def test_a_message_twice_in_the_log_is_duplicated() -> None:
    s = clean()
    s.message(7, ALICE, "a2")  # a retry appended a second copy of seq 6
    s.got_all(ALICE, s.session(ALICE, 6), 7)
    s.got_all(CAROL, s.session(CAROL, 6), 7)
    assert bad_only(s.result()) == {"duplicated": 1}


def test_an_indeterminate_send_may_be_present_once_but_not_twice() -> None:
    s = clean()
    s.op("invoke", ALICE, "a3")
    s.op("info", ALICE, "a3", code="disconnect")
    s.message(7, ALICE, "a3")
    s.got_all(ALICE, s.session(ALICE, 6), 7)
    s.got_all(CAROL, s.session(CAROL, 6), 7)
    result = check(s.history, s.log)
    assert result.ok and (result.indeterminate, result.indeterminate_present) == (1, 1)
    s.message(8, ALICE, "a3")
    s.got_all(ALICE, s.session(ALICE, 7), 8)
    s.got_all(CAROL, s.session(CAROL, 7), 8)
    assert bad_only(s.result()) == {"duplicated": 1}


def test_two_acks_of_one_client_msg_id_at_different_seqs() -> None:
    s = clean()
    s.op("ok", ALICE, "a2", seq=9)  # a retry answered with another seq
    assert bad_only(s.result()) == {"duplicated": 1}


def test_an_event_after_a_leave_is_a_leak() -> None:
    s = clean()
    s.got(BOB, s.session(BOB, 4), 6)  # Bob left at 4, yet got seq 6
    assert bad_only(s.result()) == {"leaked": 1}


def test_an_event_before_a_join_is_a_leak() -> None:
    s = clean()
    s.got(CAROL, s.session(CAROL), 3)
    assert s.result()["leaked"] == 1


def test_a_seq_never_received_inside_an_interval_is_a_gap() -> None:
    s = clean()
    s.message(7, ALICE, "a3")
    s.sent(ALICE, "a3", 7)
    s.got_all(ALICE, s.session(ALICE, 6), 7)
    # Carol never gets 7.
    assert bad_only(s.result()) == {"gaps": 1}


def test_a_justified_archived_marker_covers_what_was_not_received() -> None:
    s = Scenario(History(window=2))
    s.created(1, ALICE, BOB)
    for seq in range(2, 7):
        s.message(seq, ALICE, f"m{seq}")
        s.sent(ALICE, f"m{seq}", seq)
    s.got_all(ALICE, s.session(ALICE), 1, 2, 3, 4, 5, 6)
    sid = s.session(BOB)
    s.archived(BOB, sid, 5)  # messages 5 and 6 are the window of 2
    s.got_all(BOB, sid, 5, 6)
    result = check(s.history, s.log)
    assert result.ok, result.problems
    assert result.archived_seqs == 4  # 1..4 covered by the marker


def test_an_unjustified_archived_marker_is_a_gap() -> None:
    s = Scenario(History(window=200))
    s.created(1, ALICE, BOB)
    for seq in range(2, 7):
        s.message(seq, ALICE, f"m{seq}")
        s.sent(ALICE, f"m{seq}", seq)
    s.got_all(ALICE, s.session(ALICE), 1, 2, 3, 4, 5, 6)
    sid = s.session(BOB)
    s.archived(BOB, sid, 5)  # only 2 messages after it, the window is 200: hides 1..4
    s.got_all(BOB, sid, 5, 6)
    counts = s.result()
    assert counts["gaps"] == 1 + 4  # the marker, and the four seqs it hid


def bob_archived_at(window_start: int) -> Scenario:
    """Window 2; Carol is added at 5, between messages; Bob gets a marker, then the rest.
    Bob's window starts at 5: right after message 4, the third newest he may see."""
    s = Scenario(History(window=2))
    s.created(1, ALICE, BOB)
    for seq in (2, 3, 4, 6, 7):
        s.message(seq, ALICE, f"m{seq}")
        s.sent(ALICE, f"m{seq}", seq)
    s.joined(5, ALICE, CAROL)
    s.got_all(ALICE, s.session(ALICE), 1, 2, 3, 4, 5, 6, 7)
    s.got_all(CAROL, s.session(CAROL), 5, 6, 7)
    sid = s.session(BOB)
    s.archived(BOB, sid, window_start)
    s.got_all(BOB, sid, *range(window_start, 8))
    return s


def test_an_archived_marker_where_no_window_began_is_a_gap() -> None:
    s = bob_archived_at(5)
    result = check(s.history, s.log)
    assert result.ok, result.problems
    assert result.archived_seqs == 4
    # At 6, two messages still follow it, but it hides seq 5 (and so 1 to 4 as well).
    assert bad_only(bob_archived_at(6).result()) == {"gaps": 1 + 5}


def test_membership_the_rules_could_not_write_has_diverged() -> None:
    s = clean()
    s.joined(7, ALICE, CAROL)  # Carol is a member already
    assert s.result()["diverged"] == 1


def test_a_seq_missing_from_the_log_is_a_gap() -> None:
    s = clean()
    s.message(8, ALICE, "a4")  # seq 7 never written
    s.sent(ALICE, "a4", 8)
    s.got_all(ALICE, s.session(ALICE, 6), 8)
    s.got_all(CAROL, s.session(CAROL, 6), 8)
    assert bad_only(s.result()) == {"gaps": 1}


def test_a_repeat_or_a_skip_within_a_session_breaks_order() -> None:
    s = clean()
    sid = s.session(ALICE, 4)
    s.got(ALICE, sid, 6)  # skipped 5
    assert bad_only(s.result()) == {"order": 1}
    s = clean()
    sid = s.session(ALICE, 4)
    s.got_all(ALICE, sid, 5, 6, 6)  # 6 twice
    assert bad_only(s.result()) == {"order": 1}
    s = clean()
    sid = s.session(ALICE, 6)
    s.got(ALICE, sid, 3)  # older than what the client said it holds
    assert bad_only(s.result()) == {"order": 1}


def test_a_jump_across_a_leave_and_rejoin_is_not_a_skip() -> None:
    s = Scenario()
    s.created(1, ALICE, BOB)
    s.left(2, BOB)
    s.message(3, ALICE, "a1")
    s.sent(ALICE, "a1", 3)
    s.joined(4, ALICE, BOB)
    sid = s.session(BOB)
    s.got_all(BOB, sid, 1, 2, 4)  # 3 is not Bob's to see
    s.got_all(ALICE, s.session(ALICE), 1, 2, 3, 4)
    result = check(s.history, s.log)
    assert result.ok, result.problems


def test_a_refused_message_in_the_log_is_a_phantom() -> None:
    s = clean()
    s.op("invoke", ALICE, "a3")
    s.op("fail", ALICE, "a3", code="unavailable")
    s.message(7, ALICE, "a3")
    s.got_all(ALICE, s.session(ALICE, 6), 7)
    s.got_all(CAROL, s.session(CAROL, 6), 7)
    assert bad_only(s.result()) == {"phantom": 1}
    s = clean()
    s.message(7, ALICE, "nobody-sent-this")
    s.got_all(ALICE, s.session(ALICE, 6), 7)
    s.got_all(CAROL, s.session(CAROL, 6), 7)
    assert bad_only(s.result()) == {"phantom": 1}


def test_an_event_unlike_the_log_has_diverged() -> None:
    s = clean()
    sid = s.session(ALICE, 6)
    s.history.add(Recv(s.history.now(), ALICE, ALICE, sid, CONV, 7, "message", "ghost", None))
    counts = bad_only(s.result())
    assert counts["diverged"] == 1


def test_an_acked_leave_that_is_not_in_the_log_is_lost() -> None:
    s = clean()
    s.op("invoke", ALICE, "leave-a", f="leave")
    s.op("ok", ALICE, "leave-a", f="leave", seq=6)  # seq 6 is a message, not Alice's left
    assert bad_only(s.result()) == {"lost": 1}


def test_a_final_reader_must_get_its_whole_window() -> None:
    s = clean()
    sid = s.session(ALICE, final=True)
    s.got_all(ALICE, sid, 1, 2, 3, 4, 6)  # 5 missing from the fresh read (got earlier)
    counts = bad_only(s.result())
    assert counts == {"gaps": 1, "order": 1}


def test_pushes_before_the_sync_break_order() -> None:
    s = clean()
    s.history.add(Recv(s.history.now(), ALICE, ALICE, 99, CONV, 6, "message", "a2", None))
    s.history.add(SyncSent(s.history.now(), ALICE, ALICE, 99, ((CONV, 5),)))
    assert bad_only(s.result()) == {"order": 1}


def test_message_markers_and_percentiles() -> None:
    text = message_text("p3-17", 64)
    assert len(text) == 64 and marker_of(text) == "p3-17"
    assert marker_of("hello") is None and marker_of(None) is None
    assert percentile([], 0.5) == 0.0
    assert percentile([3.0, 1.0, 2.0], 0.5) == 2.0
    assert percentile(list(map(float, range(1, 101))), 0.99) == 99.0
