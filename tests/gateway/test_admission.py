"""The connection cap and head deadlines as plain rules (:mod:`chatd.gateway.admission`).

The real server under hostile sockets is tested in ``test_edges.py``; here the rules are
driven by random histories against a model.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from chatd.gateway.admission import Admission, ConnectionGate, HeadDeadlines
from chatd.gateway.server import MIN_CONNECTIONS, RESERVED_FILES, connection_cap

# A history: (action, which connection among the open ones, by index modulo their number).
ACTIONS = st.lists(
    st.tuples(st.sampled_from(["arrive", "head", "response", "upgrade", "close"]), st.integers()),
    max_size=200,
)


@given(st.integers(1, 12), ACTIONS)
def test_the_cap_holds_and_only_the_longest_waiter_is_evicted(
    cap: int, history: list[tuple[str, int]]
) -> None:
    gate: ConnectionGate[int] = ConnectionGate(cap)
    waiting: list[int] = []  # the model: open connections waiting for a head, oldest first
    busy: set[int] = set()
    names = iter(range(1_000_000))
    for action, pick in history:
        opened = waiting + sorted(busy)
        if action == "arrive":
            verdict = gate.arrive(len(opened))
            if len(opened) < cap:
                assert verdict.admission is Admission.ADMIT
            elif waiting:
                assert verdict.admission is Admission.EVICT
                assert verdict.victim == waiting.pop(0)  # closed by the caller
            else:
                assert verdict.admission is Admission.REFUSE
                continue
            name = next(names)
            waiting.append(name)
            gate.waiting(name)
        elif not opened:
            continue
        else:
            name = opened[pick % len(opened)]
            if action == "head" and name in waiting:
                waiting.remove(name)
                busy.add(name)
                gate.busy(name)
            elif action == "response" and name in busy:
                busy.remove(name)
                waiting.append(name)  # waits again, as the youngest
                gate.waiting(name)
            elif action == "upgrade" and name in waiting:
                waiting.remove(name)
                busy.add(name)  # a WebSocket: busy for good, still open
                gate.gone(name)
            elif action == "close":
                (waiting.remove if name in waiting else busy.remove)(name)
                gate.gone(name)
        assert len(waiting) + len(busy) <= cap
        assert len(gate) == len(waiting)
        assert gate.oldest_waiting() == (waiting[0] if waiting else None)


DURATIONS = st.floats(0, 1000, allow_nan=False)


@given(st.integers(1, 100), st.integers(1, 100), DURATIONS, DURATIONS)
def test_a_head_is_closed_at_its_first_deadline(
    idle: int, head: int, waited: float, silence: float
) -> None:
    silent = min(silence, waited)  # a connection is never silent longer than it waited
    deadlines = HeadDeadlines(idle, head)
    assert deadlines.expired(waited, silent) == (waited >= head or silent >= idle)
    wait = deadlines.next_check(waited, silent)
    assert wait >= 0
    if not deadlines.expired(waited, silent):
        # Bytes reset the idle deadline only: with none, the next check finds it expired.
        assert wait > 0
        later = wait + 1e-6  # float sums; the protocol checks again if it is a hair early
        assert deadlines.expired(waited + later, silent + later)


@given(st.integers(0, 10_000_000), st.integers(0, 10_000_000))
def test_the_cap_fits_the_open_file_limit(wanted: int, open_files: int) -> None:
    cap = connection_cap(wanted, open_files)
    assert cap >= MIN_CONNECTIONS
    assert cap <= max(wanted, MIN_CONNECTIONS)
    assert cap <= max(open_files - RESERVED_FILES, MIN_CONNECTIONS)
    if MIN_CONNECTIONS <= wanted <= open_files - RESERVED_FILES:
        assert cap == wanted
