"""The login throttle's rule (chatd.core.login_throttle), by examples and by properties.

The properties drive :class:`AttemptLedger`, the reference, with arbitrary interleavings of
attempts starting, finishing (right or wrong password) and time passing, and check that no
budget ever lets more attempts through to the hash than its limit within any window.
"""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import example, given, settings
from hypothesis import strategies as st

from chatd.core.login_throttle import (
    Admission,
    AttemptCounts,
    AttemptLedger,
    Budget,
    ThrottleLimits,
    exceeded,
)

LIMITS = ThrottleLimits(per_login=3, per_address=5, overall=8, window_ms=100)


def test_the_narrowest_budget_is_named_first() -> None:
    limits = ThrottleLimits(per_login=1, per_address=1, overall=1, window_ms=10)
    assert exceeded(AttemptCounts(0, 0, 0), limits) is None
    assert exceeded(AttemptCounts(1, 1, 1), limits) is Budget.LOGIN
    assert exceeded(AttemptCounts(0, 1, 1), limits) is Budget.ADDRESS
    assert exceeded(AttemptCounts(0, 0, 1), limits) is Budget.GLOBAL


def test_attempts_in_flight_count_like_failures() -> None:
    ledger = AttemptLedger(LIMITS)
    admitted = [ledger.begin("alice", "a", 0) for _ in range(5)]
    # Nothing finished yet: three started, the fourth and fifth are refused at once.
    assert [a.attempt is not None for a in admitted] == [True, True, True, False, False]
    assert admitted[3] == Admission(None, Budget.LOGIN)


def test_a_success_clears_finished_failures_not_those_in_flight() -> None:
    ledger = AttemptLedger(LIMITS)
    first, second, right = (ledger.begin("alice", "a", 0).attempt for _ in range(3))
    assert first is not None and second is not None and right is not None
    ledger.end(first, succeeded=False)  # finished: cleared by the success below
    ledger.end(right, succeeded=True)  # ``second`` is still being checked: it keeps counting
    assert ledger.counts("alice", "a", 1) == AttemptCounts(1, 1, 1)


def test_the_window_slides() -> None:
    ledger = AttemptLedger(LIMITS)
    for t in range(3):
        attempt = ledger.begin("alice", "a", t).attempt
        assert attempt is not None
        ledger.end(attempt, succeeded=False)
    assert ledger.begin("alice", "a", 99).refused_by is Budget.LOGIN
    assert ledger.begin("alice", "a", 100).attempt is not None  # the one of t=0 is over


def test_spraying_one_password_over_many_logins_hits_the_address_budget() -> None:
    ledger = AttemptLedger(LIMITS)
    answers = [ledger.begin(f"user{i}", "attacker", 0) for i in range(7)]
    assert [a.refused_by for a in answers] == [None] * 5 + [Budget.ADDRESS] * 2
    others = [ledger.begin(f"user{i}", f"elsewhere{i}", 0) for i in range(5)]
    assert [a.refused_by for a in others] == [None] * 3 + [Budget.GLOBAL] * 2


# ----------------------------------------------------------------------------- properties


@dataclass(frozen=True)
class Begin:
    login: int
    address: int
    right: bool  # the password is right: the check will succeed


@dataclass(frozen=True)
class Finish:
    which: int  # index among the attempts in flight


@dataclass(frozen=True)
class Wait:
    ms: int


steps = st.lists(
    st.one_of(
        st.builds(Begin, st.integers(0, 1), st.integers(0, 2), st.booleans()),
        st.builds(Finish, st.integers(0, 50)),
        st.builds(Wait, st.integers(1, 60)),
    ),
    max_size=120,
)
limits_strategy = st.builds(
    ThrottleLimits,
    per_login=st.integers(1, 5),
    per_address=st.integers(1, 8),
    overall=st.integers(1, 12),
    window_ms=st.integers(1, 200),
)


@dataclass
class Admitted:
    login: int
    address: int
    at: int
    right: bool


@dataclass
class Succeeded:
    login: int
    racing: list[int]  # when the wrong guesses on the login still in flight were admitted


def run(limits: ThrottleLimits, script: list[Begin | Finish | Wait]) -> list[Admitted | Succeeded]:
    """Play the script on a ledger, attempts finishing in any order; what happened, in
    order: every admitted attempt, and every success when it finished."""
    ledger = AttemptLedger(limits)
    now = 0
    in_flight: dict[int, Admitted] = {}
    happened: list[Admitted | Succeeded] = []
    for step in script:
        if isinstance(step, Wait):
            now += step.ms
        elif isinstance(step, Begin):
            answer = ledger.begin(f"login{step.login}", f"10.0.0.{step.address}", now)
            if answer.attempt is not None:
                admitted = Admitted(step.login, step.address, now, step.right)
                in_flight[answer.attempt] = admitted
                happened.append(admitted)
        elif in_flight:
            attempt_id = sorted(in_flight)[step.which % len(in_flight)]
            done = in_flight.pop(attempt_id)
            ledger.end(attempt_id, succeeded=done.right)
            if done.right:
                racing = [a.at for a in in_flight.values() if a.login == done.login and not a.right]
                happened.append(Succeeded(done.login, racing))
    return happened


def most_in_a_window(times: list[int], window_ms: int) -> int:
    """The most of ``times`` inside any window of ``window_ms``."""
    return max(
        (sum(1 for t in times if start <= t < start + window_ms) for start in times), default=0
    )


@settings(max_examples=300, deadline=None)
@given(limits_strategy, steps)
def test_without_the_right_password_no_login_gets_more_than_its_budget(
    limits: ThrottleLimits, script: list[Begin | Finish | Wait]
) -> None:
    wrong_only = [Begin(s.login, s.address, False) if isinstance(s, Begin) else s for s in script]
    admitted = [a for a in run(limits, wrong_only) if isinstance(a, Admitted)]
    for login in range(2):
        times = [a.at for a in admitted if a.login == login]
        assert most_in_a_window(times, limits.window_ms) <= limits.per_login
    for address in range(3):
        times = [a.at for a in admitted if a.address == address]
        assert most_in_a_window(times, limits.window_ms) <= limits.per_address
    assert most_in_a_window([a.at for a in admitted], limits.window_ms) <= limits.overall


@settings(max_examples=300, deadline=None)
@given(limits_strategy, steps)
@example(  # the owner's success lands while a guess is in flight; two more guesses follow
    ThrottleLimits(per_login=2, per_address=8, overall=12, window_ms=100),
    [Begin(0, 0, True), Begin(0, 1, False), Finish(0), Begin(0, 1, False), Begin(0, 2, False)],
)
def test_wrong_guesses_between_two_right_passwords_stay_within_the_budget(
    limits: ThrottleLimits, script: list[Begin | Finish | Wait]
) -> None:
    """Whatever the interleaving, the wrong guesses on one login that were in flight when
    its owner's last success finished, or admitted since, never exceed the budget within a
    window: a success clears only what finished before it, so racing guesses keep counting."""
    happened = run(limits, script)
    for login in range(2):
        since_success: list[int] = []
        for event in happened:
            if event.login != login:
                continue
            if isinstance(event, Succeeded):
                since_success = list(event.racing)
            elif not event.right:
                since_success.append(event.at)
                assert most_in_a_window(since_success, limits.window_ms) <= limits.per_login


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 10), st.lists(st.integers(0, 59), min_size=50, max_size=50))
def test_a_parallel_burst_gets_exactly_the_budget_through(budget: int, times: list[int]) -> None:
    """50 attempts on one login from 50 addresses, all started before any finished."""
    ledger = AttemptLedger(ThrottleLimits(per_login=budget, window_ms=60_000))
    answers = [ledger.begin("alice", f"10.0.0.{i}", t) for i, t in enumerate(sorted(times))]
    assert [a.attempt is not None for a in answers] == [True] * budget + [False] * (50 - budget)
    assert {a.refused_by for a in answers[budget:]} == {Budget.LOGIN}
