"""The checker: a pure function of the history and the final log (no I/O, no clock).

What it counts (all must be 0 for a run to pass):

``lost``
    An acknowledged operation that is not in the log exactly where its ack said: a ``send``
    whose ``client_msg_id`` marker is not at the acked ``(conv, seq)`` with the right sender;
    a ``create``/``add``/``leave`` whose acked seq does not hold the matching ``created``/
    ``joined``/``left`` event.  Two acks of one ``client_msg_id`` with different seqs count too.
``duplicated``
    A ``client_msg_id`` present more than once in the log (acknowledged or not: an
    indeterminate send may be present or absent, never twice), or a seq twice in the log.
``phantom``
    A message in the log that no client sent, or whose every attempt got an error answer
    (an error answer promises that nothing was recorded).
``leaked``
    An event a user received at a seq outside their membership intervals (derived from the
    log's ``created``/``joined``/``left`` events by :mod:`chatd.core.visibility`, the reference
    rule: ``[joined, left]``, the ``left`` included).
``gaps``
    A seq missing from a conversation's log (seqs must be dense); a seq inside a user's
    intervals that none of the user's sessions received and no *justified* ``archived``
    marker covered; a seq a final fresh reader should have got and did not; an ``archived``
    marker that is not justified (its ``window_start`` is not where the user's window began
    at some moment of the log, by the reference rule — right after a visible message followed
    by at least ``window`` visible messages: anywhere else it would hide a gap).
``diverged``
    A received event that differs from the log's event at that seq (kind, sender, marker,
    the user named) or names a seq the log does not hold: a client was shown something the
    final log contradicts.  Also a conversation whose ``created``/``joined``/``left`` events
    the rules could not have written (an add of a member, a leave of a non-member).
``order``
    Within one session (one connection), per conversation: each event must be exactly the
    next seq the user may see after the session's cursor — the position the client claimed
    in ``sync``, moved by each event and by ``archived`` markers.  A repeat, a step back or
    a skip breaks "in seq order, exactly once, no silent gap" (protocol §6).

Indeterminate operations (no answer before a crash, never answered later) are not errors:
they are counted, and whether they ended up in the log is reported.
"""

from __future__ import annotations

import bisect
import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from chatd.core import visibility as reference
from chatd.core.events import Event
from chatd.core.ids import ConvId, Seq, UserId
from chatd.core.records import Interval

from .history import Archived, History, Op, Recv, SyncSent
from .truth import LogEvent

MAX_PROBLEMS = 40

BAD_COUNTS = ("lost", "duplicated", "phantom", "leaked", "gaps", "diverged", "order")


@dataclass
class Result:
    sent: int = 0  # send operations invoked (distinct client_msg_id)
    acked: int = 0  # of which acknowledged
    failed: int = 0  # of which every attempt got an error answer
    indeterminate: int = 0  # of which never answered
    indeterminate_present: int = 0  # indeterminate sends found in the log (once)
    mutations: int = 0  # create/add/leave invoked
    mutations_acked: int = 0
    lost: int = 0
    duplicated: int = 0
    phantom: int = 0
    leaked: int = 0
    gaps: int = 0
    diverged: int = 0
    order: int = 0
    received: int = 0  # event pushes received, all sessions
    archived_seqs: int = 0  # visible seqs never received but covered by an archived marker
    archived_markers: int = 0
    sessions: int = 0
    log_events: int = 0
    conversations: int = 0
    latencies: list[float] = field(default_factory=list)  # acked sends: invoke to ack, s
    problems: list[str] = field(default_factory=list)

    def bad(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in BAD_COUNTS}

    @property
    def ok(self) -> bool:
        return not any(self.bad().values())

    def problem(self, counter: str, text: str, count: int = 1) -> None:
        setattr(self, counter, getattr(self, counter) + count)
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(f"{counter}: {text}")


def percentile(values: list[float], q: float) -> float:
    """The ``q``-quantile (0..1) by nearest rank; 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[rank - 1]


class Visibility:
    """Who may see what of the final log, per user and conversation, indexed for the checks.

    The rule is :mod:`chatd.core.visibility`'s (the reference the store's SQL matches): the
    intervals are replayed from each conversation's ``created``/``joined``/``left`` events.
    A conversation whose membership events the rules could not have written is named in
    ``impossible`` (and nobody may see anything of it).
    """

    def __init__(self, log: dict[int, dict[int, LogEvent]]) -> None:
        self.intervals: dict[tuple[int, int], tuple[Interval, ...]] = {}
        self.impossible: list[str] = []
        # Visible events (all kinds) and their seqs, sorted, per (user, conv).
        self._events: dict[tuple[int, int], tuple[Event, ...]] = {}
        self._seqs: dict[tuple[int, int], list[int]] = {}
        for conv, by_seq in log.items():
            events = [_as_event(e) for e in by_seq.values()]
            try:
                by_user = reference.intervals_from_log(events)
            except (KeyError, ValueError) as exc:
                self.impossible.append(f"conv {conv}: {exc!r}")
                continue
            for user, spans in by_user.items():
                seen = reference.visible_events(events, spans)
                self.intervals[(user, conv)] = spans
                self._events[(user, conv)] = seen
                self._seqs[(user, conv)] = [e.seq for e in seen]
        self._by_user: dict[int, list[int]] = defaultdict(list)
        for user, conv in self._seqs:
            self._by_user[user].append(conv)

    def visible(self, user: int, conv: int, seq: int) -> bool:
        return reference.visible(self.intervals.get((user, conv), ()), seq)

    def seqs(self, user: int, conv: int) -> list[int]:
        return self._seqs.get((user, conv), [])

    def next_after(self, user: int, conv: int, after: int) -> int | None:
        seqs = self.seqs(user, conv)
        i = bisect.bisect_right(seqs, after)
        return seqs[i] if i < len(seqs) else None

    def window_began_at(self, user: int, conv: int, start: int, window: int) -> bool:
        """Whether the user's window began at ``start`` with older events archived at some
        moment of the log: in the log as it stood when the ``window``-th visible message
        from ``start`` on was the newest (the only moment it can have)."""
        seen = self._events.get((user, conv), ())
        later = [i for i, e in enumerate(seen) if e.seq >= start and e.kind == "message"]
        if len(later) < window:
            return False
        end = later[window - 1] + 1 if window else sum(1 for e in seen if e.seq < start)
        then, spans = seen[:end], self.intervals[(user, conv)]
        return reference.window_start(then, spans, window) == start and (
            reference.archived_before(then, spans, start)
        )

    def pairs(self) -> Iterable[tuple[int, int]]:
        return self._seqs.keys()

    def convs_of(self, user: int) -> list[int]:
        return self._by_user.get(user, [])


def _as_event(event: LogEvent) -> Event:
    """A log event as the reference reads it (the fields membership needs in its payload)."""
    payload: dict[str, object] = {}
    if event.kind == "created":
        payload["members"] = list(event.members)
    elif event.kind in ("joined", "left") and event.subject is not None:
        payload["user"] = event.subject
    return Event(ConvId(event.conv), Seq(event.seq), event.kind, UserId(event.sender), 0, payload)


def index_log(events: Iterable[LogEvent], result: Result) -> dict[int, dict[int, LogEvent]]:
    """The log by conv and seq; a repeated seq is a duplicate, a missing one a gap."""
    log: dict[int, dict[int, LogEvent]] = defaultdict(dict)
    for event in events:
        result.log_events += 1
        if event.seq in log[event.conv]:
            result.problem("duplicated", f"conv {event.conv} holds seq {event.seq} twice")
            continue
        log[event.conv][event.seq] = event
    for conv, by_seq in log.items():
        top = max(by_seq)
        missing = [s for s in range(1, top + 1) if s not in by_seq]
        if missing:
            result.problem(
                "gaps", f"conv {conv}: the log lacks seqs {missing[:10]}", count=len(missing)
            )
    result.conversations = len(log)
    return dict(log)


def check(history: History, events: Iterable[LogEvent]) -> Result:
    result = Result()
    log = index_log(events, result)
    seen = _check_operations(history.ops, log, result)
    for conv, by_seq in log.items():
        for event in by_seq.values():
            if event.cmid is not None and event.cmid not in seen:
                result.problem(
                    "phantom", f"conv {conv} seq {event.seq}: message {event.cmid} never sent"
                )
    visibility = Visibility(log)
    for what in visibility.impossible:
        result.problem("diverged", f"membership the rules could not have written: {what}")
    _check_sessions(history, log, visibility, result)
    return result


# ----------------------------------------------------------------------------- operations


def _check_operations(
    ops: list[Op], log: dict[int, dict[int, LogEvent]], result: Result
) -> set[str]:
    """Acked operations present exactly once at their seq; returns the cmids invoked."""
    by_cmid: dict[str, list[Op]] = defaultdict(list)
    for op in ops:
        by_cmid[op.cmid].append(op)
    occurrences: dict[str, list[LogEvent]] = defaultdict(list)
    for by_seq in log.values():
        for event in by_seq.values():
            if event.cmid is not None:
                occurrences[event.cmid].append(event)
    invoked: set[str] = set()
    for cmid, records in by_cmid.items():
        invoke = next((r for r in records if r.type == "invoke"), None)
        if invoke is None:
            continue  # outcomes without an invoke: not an operation of this history
        invoked.add(cmid)
        oks = [r for r in records if r.type == "ok"]
        answered = [r for r in records if r.type in ("ok", "fail")]
        indeterminate = not oks and (not answered or any(r.type == "info" for r in records))
        failed = not oks and not indeterminate
        if invoke.f == "send":
            result.sent += 1
            found = occurrences.get(cmid, [])
            if len(found) > 1:
                places = [(e.conv, e.seq) for e in found]
                result.problem(
                    "duplicated", f"send {cmid} is in the log at {places}", count=len(found) - 1
                )
            if oks:
                result.acked += 1
                result.latencies.append(oks[0].t - invoke.t)
                _same_acks(cmid, oks, result)
                ack = oks[0]
                if not any(
                    e.conv == ack.conv and e.seq == ack.seq and e.sender == invoke.user
                    for e in found
                ):
                    where = [(e.conv, e.seq) for e in found]
                    result.problem(
                        "lost",
                        f"send {cmid} acked at conv {ack.conv} seq {ack.seq}; log: {where}",
                    )
            elif failed:
                result.failed += 1
                if found:
                    codes = sorted({r.code or "" for r in records if r.type == "fail"})
                    result.problem(
                        "phantom", f"send {cmid} was refused ({codes}) yet is in the log"
                    )
            else:
                result.indeterminate += 1
                if found:
                    result.indeterminate_present += 1
        else:
            result.mutations += 1
            if oks:
                result.mutations_acked += 1
                _same_acks(cmid, oks, result)
                _check_membership_ack(invoke, oks[0], log, result)
    return invoked


def _same_acks(cmid: str, oks: list[Op], result: Result) -> None:
    places = {(r.conv, r.seq) for r in oks}
    if len(places) > 1:
        result.problem("duplicated", f"{cmid} was acked at different places {sorted(places)}")


def _check_membership_ack(
    invoke: Op, ack: Op, log: dict[int, dict[int, LogEvent]], result: Result
) -> None:
    assert ack.conv is not None and ack.seq is not None
    event = log.get(ack.conv, {}).get(ack.seq)
    want_kind, want_subject = {
        "create": ("created", None),
        "add": ("joined", invoke.target),
        "leave": ("left", invoke.user),
    }[invoke.f]
    if (
        event is None
        or event.kind != want_kind
        or event.sender != invoke.user
        or (want_subject is not None and event.subject != want_subject)
        or (invoke.f == "create" and invoke.user not in event.members)
    ):
        result.problem(
            "lost",
            f"{invoke.f} {invoke.cmid} acked at conv {ack.conv} seq {ack.seq}, log has {event}",
        )


# ----------------------------------------------------------------------------- sessions


def _matches(got: Recv, event: LogEvent) -> bool:
    return (
        got.kind == event.kind
        and got.cmid == event.cmid
        and (got.kind not in ("joined", "left") or got.subject == event.subject)
    )


def _check_sessions(
    history: History, log: dict[int, dict[int, LogEvent]], vis: Visibility, result: Result
) -> None:
    window = history.window
    streams: dict[int, list[Recv | Archived]] = defaultdict(list)
    items: list[Recv | Archived] = [*history.recvs, *history.archived]
    for item in items:
        streams[item.session].append(item)
    starts: dict[int, SyncSent] = {s.session: s for s in history.syncs}
    owners: dict[int, int] = {s.session: s.user for s in history.syncs}
    received: dict[tuple[int, int], set[int]] = defaultdict(set)
    covered: dict[tuple[int, int], int] = defaultdict(int)  # justified window_start
    result.sessions = len(set(streams) | set(starts))
    for session in sorted(set(streams) | set(starts)):
        stream = sorted(streams.get(session, []), key=lambda r: r.t)
        start = starts.get(session)
        user = start.user if start is not None else owners.get(session, stream[0].user)
        cursor: dict[int, int] = dict(start.positions) if start is not None else {}
        got: dict[int, set[int]] = defaultdict(set)
        session_cover: dict[int, int] = defaultdict(int)
        for item in stream:
            if start is None or item.t < start.t:
                result.problem("order", f"session {session} got {item} before its sync")
            if isinstance(item, Archived):
                result.archived_markers += 1
                conv, ws = item.conv, item.window_start
                if not vis.window_began_at(user, conv, ws, window):
                    result.problem(
                        "gaps",
                        f"user {user} conv {conv}: archived marker at {ws}, where no window"
                        f" of {window} messages ever began",
                    )
                else:
                    covered[(user, conv)] = max(covered[(user, conv)], ws)
                    session_cover[conv] = max(session_cover[conv], ws)
                cursor[conv] = max(cursor.get(conv, 0), ws - 1)
                continue
            result.received += 1
            conv, seq = item.conv, item.seq
            event = log.get(conv, {}).get(seq)
            if event is None or not _matches(item, event):
                result.problem(
                    "diverged", f"user {user} got conv {conv} seq {seq} {item.kind}; log: {event}"
                )
            before = cursor.get(conv, 0)
            if not vis.visible(user, conv, seq):
                result.problem(
                    "leaked",
                    f"user {user} got conv {conv} seq {seq} outside"
                    f" {vis.intervals.get((user, conv), [])}",
                )
            elif seq <= before:
                result.problem(
                    "order", f"session {session} conv {conv}: seq {seq} after holding {before}"
                )
            else:
                expected = vis.next_after(user, conv, before)
                if seq != expected:
                    result.problem(
                        "order",
                        f"session {session} conv {conv}: seq {seq} after {before},"
                        f" expected {expected}",
                    )
            cursor[conv] = max(before, seq)
            received[(user, conv)].add(seq)
            got[conv].add(seq)
        if start is not None and start.final:
            _check_final_read(user, session, got, session_cover, vis, result)
    for user, conv in vis.pairs():
        cover = covered[(user, conv)]
        have = received[(user, conv)]
        missing = [s for s in vis.seqs(user, conv) if s not in have and s >= cover]
        result.archived_seqs += sum(1 for s in vis.seqs(user, conv) if s < cover and s not in have)
        if missing:
            result.problem(
                "gaps", f"user {user} conv {conv} never got seqs {missing[:10]}", len(missing)
            )


def _check_final_read(
    user: int,
    session: int,
    got: dict[int, set[int]],
    cover: dict[int, int],
    vis: Visibility,
    result: Result,
) -> None:
    """A fresh reader of the final state gets, per conversation, everything it may see
    from its window on (with an archived marker if older events exist)."""
    for conv in vis.convs_of(user):
        missing = [s for s in vis.seqs(user, conv) if s >= cover[conv] and s not in got[conv]]
        if missing:
            result.problem(
                "gaps",
                f"final read (session {session}) of user {user} conv {conv} lacks {missing[:10]}",
                len(missing),
            )
