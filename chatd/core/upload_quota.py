"""How many uploads, and how many bytes, one user may send a minute: the rule, no clock, no I/O.

Each user has two token buckets, one counting uploads and one counting bytes.  A bucket holds
at most its per-minute amount and refills continuously at that amount a minute, so a user
may send a whole minute's worth at once, then goes at the steady rate.  Over any span of
``T`` seconds a user is thus admitted at most ``amount × (1 + T / 60)`` of each.

An upload is counted **when it starts** (:func:`admit`), not when it ends: a burst of
parallel uploads cannot all pass a check that is made before any of them is counted (the
login throttle's fault in issue 12).  Its size is not known yet, so it reserves what it
declares (``Content-Length``, else the largest upload allowed); when the body has been read,
:func:`settle` gives back what it did not use.  Bytes a refused file made the server receive
are counted like any others.

The buckets' state (:class:`BudgetState`) is what the store keeps, one row per user, so that
the quota holds across nodes and restarts (:class:`chatd.store.contract.UploadBudgets` reads
a row, applies :func:`admit` or :func:`settle`, and writes it back in one transaction).
Levels are integers, in **token-milliseconds**: a bucket of ``amount`` a minute holds at most
``amount × 60 000`` and gains ``amount`` each millisecond, so the arithmetic is exact and the
same on every backend.  A user whose buckets are full again (:func:`is_full`) is what a new
user is: the row may be deleted.  Times are the wall clock of whichever node asks; a clock
behind the row's time refills nothing (the later time is kept), so nodes whose clocks differ
by ``d`` give a user at most ``d``'s refill more.

:class:`QuotaLedger` is the reference: the rule over states held in memory, which the
property tests check and the store's behaviour must match.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from chatd.core.errors import RateLimitedError
from chatd.i18n import N_

MINUTE_MS = 60_000
REFUSED = N_(
    "You have sent too many files in the last minute; wait {seconds} seconds"
    " before sending another one."
)


@dataclass(frozen=True, slots=True)
class UploadLimits:
    """``CHATD_UPLOADS_PER_MINUTE``, ``CHATD_UPLOAD_BYTES_PER_MINUTE`` and the largest upload
    (what an upload that declares no size reserves)."""

    uploads_per_minute: int
    bytes_per_minute: int
    max_upload_bytes: int

    def __post_init__(self) -> None:
        if (
            self.uploads_per_minute < 1
            or self.max_upload_bytes < 1
            or self.bytes_per_minute < self.max_upload_bytes
        ):
            raise ValueError("an upload of the largest size must be admissible")

    @property
    def uploads_capacity(self) -> int:
        return self.uploads_per_minute * MINUTE_MS

    @property
    def bytes_capacity(self) -> int:
        return self.bytes_per_minute * MINUTE_MS

    def reserved_for(self, declared_bytes: int | None) -> int:
        """What an upload declaring ``declared_bytes`` (None: nothing) reserves."""
        if declared_bytes is None:
            return self.max_upload_bytes
        return max(0, min(declared_bytes, self.max_upload_bytes))


@dataclass(frozen=True, slots=True)
class BudgetState:
    """One user's two buckets at ``updated_at`` (ms): levels in token-milliseconds, which may
    be negative (bytes received beyond what was reserved are owed)."""

    uploads: int
    volume: int
    updated_at: int


@dataclass(frozen=True, slots=True)
class Reservation:
    """One admitted upload: the bytes it reserved, given back by :func:`settle`, under the
    limits it was admitted with."""

    user_id: int
    reserved: int
    limits: UploadLimits


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why an upload may not start: milliseconds until both buckets hold what it needs."""

    wait_ms: int

    def error(self) -> RateLimitedError:
        """The client's ``rate_limited`` answer (whole seconds, at least one)."""
        return RateLimitedError(REFUSED, seconds=max(1, -(-self.wait_ms // 1000)))


def full(limits: UploadLimits, now_ms: int) -> BudgetState:
    """The buckets of a user who has not uploaded lately (or has no row)."""
    return BudgetState(limits.uploads_capacity, limits.bytes_capacity, now_ms)


def refilled(state: BudgetState, limits: UploadLimits, now_ms: int) -> BudgetState:
    """``state`` at ``now_ms``: each bucket gains its per-minute amount every millisecond, up
    to its capacity.  A clock that went back refills nothing and keeps the later time."""
    elapsed = max(0, now_ms - state.updated_at)
    return BudgetState(
        min(limits.uploads_capacity, state.uploads + elapsed * limits.uploads_per_minute),
        min(limits.bytes_capacity, state.volume + elapsed * limits.bytes_per_minute),
        max(state.updated_at, now_ms),
    )


def is_full(state: BudgetState, limits: UploadLimits, now_ms: int) -> bool:
    """Whether the user's buckets are full again at ``now_ms`` (the row may go)."""
    now = refilled(state, limits, now_ms)
    return now.uploads >= limits.uploads_capacity and now.volume >= limits.bytes_capacity


def full_again_at(state: BudgetState, limits: UploadLimits) -> int:
    """The first millisecond at which ``state``'s buckets are both full again."""
    return state.updated_at + max(
        _ceil_div(limits.uploads_capacity - state.uploads, limits.uploads_per_minute),
        _ceil_div(limits.bytes_capacity - state.volume, limits.bytes_per_minute),
        0,
    )


def admit(
    state: BudgetState | None, limits: UploadLimits, declared_bytes: int | None, now_ms: int
) -> tuple[BudgetState, int] | Refusal:
    """One upload starting at ``now_ms``: the state after counting it and the bytes it
    reserved, or the :class:`Refusal` that says how long to wait (the state is then
    unchanged)."""
    reserved = limits.reserved_for(declared_bytes)
    now = refilled(state or full(limits, now_ms), limits, now_ms)
    wait_ms = max(
        _ceil_div(MINUTE_MS - now.uploads, limits.uploads_per_minute),
        _ceil_div(reserved * MINUTE_MS - now.volume, limits.bytes_per_minute),
    )
    if wait_ms > 0:
        return Refusal(wait_ms)
    spent = BudgetState(now.uploads - MINUTE_MS, now.volume - reserved * MINUTE_MS, now.updated_at)
    return spent, reserved


def settle(
    state: BudgetState | None, reservation: Reservation, received_bytes: int, now_ms: int
) -> BudgetState:
    """The upload's body is read: ``received_bytes`` is what it really cost (what it reserved
    but did not use comes back; what came beyond it is owed).  ``state`` None: the user's
    row was forgotten, which only a full bucket is."""
    limits = reservation.limits
    now = refilled(state or full(limits, now_ms), limits, now_ms)
    returned = (reservation.reserved - received_bytes) * MINUTE_MS
    volume = min(limits.bytes_capacity, now.volume + returned)
    return BudgetState(now.uploads, volume, now.updated_at)


def _ceil_div(numerator: int, denominator: int) -> int:
    return -(-numerator // denominator)


@dataclass
class QuotaLedger:
    """The rule over states kept in memory: the reference the store must match."""

    limits: UploadLimits
    users: dict[int, BudgetState] = field(default_factory=dict)

    def admit(self, user_id: int, declared_bytes: int | None, now_ms: int) -> Reservation:
        """Count one upload, or raise ``rate_limited``."""
        answer = admit(self.users.get(user_id), self.limits, declared_bytes, now_ms)
        if isinstance(answer, Refusal):
            raise answer.error()
        self.users[user_id], reserved = answer
        return Reservation(user_id, reserved, self.limits)

    def settle(self, reservation: Reservation, received_bytes: int, now_ms: int) -> None:
        user_id = reservation.user_id
        state = settle(self.users.get(user_id), reservation, received_bytes, now_ms)
        if is_full(state, self.limits, now_ms):
            self.users.pop(user_id, None)
        else:
            self.users[user_id] = state

    def remaining(self, user_id: int, now_ms: int) -> tuple[float, float]:
        """Uploads and bytes ``user_id`` may still send at ``now_ms`` (for tests and logs)."""
        state = refilled(self.users.get(user_id) or full(self.limits, now_ms), self.limits, now_ms)
        return state.uploads / MINUTE_MS, state.volume / MINUTE_MS

    def forget_full(self, now_ms: int) -> None:
        """Drop the users whose buckets are full again (what the store's rows do)."""
        for user_id, state in list(self.users.items()):
            if is_full(state, self.limits, now_ms):
                del self.users[user_id]
