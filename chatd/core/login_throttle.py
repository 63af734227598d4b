"""The login throttle's rule: which password attempts may reach the hash (pure).

Checking a budget and counting a failure afterwards lets every attempt of a parallel burst
through (they all check before any of them fails).  So an attempt counts from the moment it
**starts**: the check and the count are one step (the store's :meth:`begin_login_attempt
<chatd.store.contract.LoginAttempts.begin_login_attempt>` decides with :func:`exceeded` and
records the attempt in one transaction), and an attempt in flight counts exactly like a
finished failure.  Three budgets, each over the same sliding window:

* **per login** (``CHATD_LOGIN_LIMIT``, 5): guessing one account's password;
* **per client address** (``CHATD_LOGIN_ADDRESS_LIMIT``): spraying one password over many
  logins from one place;
* **global** (``CHATD_LOGIN_GLOBAL_LIMIT``): spraying from many places at once.

A success takes its own attempt out of every budget (people who type their password right
are not what the budgets limit: a hospital behind one address logs hundreds in at 8:00), and
clears the **finished** failures of its login — never the ones still in flight, which may be
an attacker's guesses racing the owner's right password.

:class:`AttemptLedger` is the reference: the rule applied to attempts held in memory, which
the property tests check and the store's behaviour must match.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field


class Budget(enum.StrEnum):
    """What an attempt counts against; the one it would exceed is why it is refused."""

    LOGIN = "login"
    ADDRESS = "address"
    GLOBAL = "global"


@dataclass(frozen=True, slots=True)
class ThrottleLimits:
    """How many attempts may count at once in each budget, over ``window_ms``."""

    per_login: int = 5
    per_address: int = 30
    overall: int = 300
    window_ms: int = 60_000

    def limit(self, budget: Budget) -> int:
        if budget is Budget.LOGIN:
            return self.per_login
        return self.per_address if budget is Budget.ADDRESS else self.overall


@dataclass(frozen=True, slots=True)
class AttemptCounts:
    """The attempts that count now against each budget of one new attempt."""

    login: int
    address: int
    overall: int

    def of(self, budget: Budget) -> int:
        if budget is Budget.LOGIN:
            return self.login
        return self.address if budget is Budget.ADDRESS else self.overall


def exceeded(counts: AttemptCounts, limits: ThrottleLimits) -> Budget | None:
    """The budget a new attempt would exceed (the narrowest first), or None: it may start."""
    for budget in Budget:
        if counts.of(budget) >= limits.limit(budget):
            return budget
    return None


def counts_at(started_at: int, now_ms: int, limits: ThrottleLimits) -> bool:
    """Whether an attempt started at ``started_at`` (and not taken out by a success) still
    counts at ``now_ms``: it does for ``window_ms``, in flight or finished."""
    return now_ms - started_at < limits.window_ms


@dataclass(frozen=True, slots=True)
class Admission:
    """The store's answer to a new attempt: its id, or the budget that refused it."""

    attempt: int | None
    refused_by: Budget | None = None

    def __post_init__(self) -> None:
        assert (self.attempt is None) != (self.refused_by is None)


@dataclass(slots=True)
class Attempt:
    id: int
    login: str
    address: str
    started_at: int
    finished: bool = False


@dataclass
class AttemptLedger:
    """The rule over attempts kept in memory: the reference the store must match."""

    limits: ThrottleLimits
    attempts: dict[int, Attempt] = field(default_factory=dict)
    _next_id: int = 1

    def counts(self, login: str, address: str, now_ms: int) -> AttemptCounts:
        live = [a for a in self.attempts.values() if counts_at(a.started_at, now_ms, self.limits)]
        return AttemptCounts(
            login=sum(1 for a in live if a.login == login),
            address=sum(1 for a in live if a.address == address),
            overall=len(live),
        )

    def begin(self, login: str, address: str, now_ms: int) -> Admission:
        self._forget_before(now_ms)
        refused = exceeded(self.counts(login, address, now_ms), self.limits)
        if refused is not None:
            return Admission(None, refused)
        attempt = Attempt(self._next_id, login, address, now_ms)
        self._next_id += 1
        self.attempts[attempt.id] = attempt
        return Admission(attempt.id)

    def end(self, attempt_id: int, *, succeeded: bool) -> None:
        attempt = self.attempts.get(attempt_id)
        if attempt is None:  # already forgotten: its window is over
            return
        if not succeeded:
            attempt.finished = True
            return
        del self.attempts[attempt_id]
        for other in cleared_by_success(attempt.login, self.attempts.values()):
            del self.attempts[other]

    def _forget_before(self, now_ms: int) -> None:
        for attempt_id in [
            a.id for a in self.attempts.values() if not counts_at(a.started_at, now_ms, self.limits)
        ]:
            del self.attempts[attempt_id]


def cleared_by_success(login: str, attempts: Iterable[Attempt]) -> list[int]:
    """The attempts a success of ``login`` takes out: its finished failures, not those in
    flight."""
    return [a.id for a in attempts if a.login == login and a.finished]
