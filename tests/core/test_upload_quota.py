"""The per-user upload quota's rule (chatd/core/upload_quota.py): uploads and bytes a minute."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chatd.core.errors import RateLimitedError
from chatd.core.upload_quota import (
    MINUTE_MS,
    BudgetState,
    QuotaLedger,
    UploadLimits,
    full_again_at,
    is_full,
)

LIMITS = UploadLimits(uploads_per_minute=5, bytes_per_minute=1000, max_upload_bytes=400)
LARGEST = LIMITS.max_upload_bytes

# One attempt: (user, ms since the previous attempt, declared size or None, size received)
attempts = st.lists(
    st.tuples(
        st.integers(1, 3),
        st.integers(0, 30_000),
        st.one_of(st.none(), st.integers(0, LARGEST)),
        st.integers(0, LARGEST),
    ),
    max_size=80,
)


def run(script: list[tuple[int, int, int | None, int]]) -> list[tuple[int, int, int]]:
    """Play ``script`` against one ledger; the admitted uploads as (user, time, received)."""
    quota = QuotaLedger(LIMITS)
    now = 0
    admitted: list[tuple[int, int, int]] = []
    for user, gap, declared, received in script:
        now += gap
        if declared is not None:
            received = min(received, declared)  # a body never exceeds its Content-Length
        try:
            reservation = quota.admit(user, declared, now)
        except RateLimitedError:
            continue
        quota.settle(reservation, received, now)
        admitted.append((user, now, received))
    return admitted


def within_allowance(admitted: list[tuple[int, int, int]], limits: UploadLimits) -> None:
    """Over any span [start, end], each user got at most amount × (1 + span / 60 s)."""
    for user in {u for u, _, _ in admitted}:
        mine = [(t, size) for u, t, size in admitted if u == user]
        for i, (start, _) in enumerate(mine):
            for end, _ in mine[i:]:
                inside = [size for t, size in mine if start <= t <= end]
                span = end - start
                assert len(inside) * MINUTE_MS <= limits.uploads_per_minute * (MINUTE_MS + span)
                assert sum(inside) * MINUTE_MS <= limits.bytes_per_minute * (MINUTE_MS + span)


@settings(max_examples=300, deadline=None)
@given(attempts)
def test_no_user_gets_more_than_a_minutes_worth_plus_the_refill(
    script: list[tuple[int, int, int | None, int]],
) -> None:
    within_allowance(run(script), LIMITS)


@settings(max_examples=200, deadline=None)
@given(attempts, st.integers(1, 3), st.one_of(st.none(), st.integers(0, LARGEST)))
def test_a_refusal_says_how_long_to_wait_and_that_wait_is_enough(
    script: list[tuple[int, int, int | None, int]], user: int, declared: int | None
) -> None:
    quota = QuotaLedger(LIMITS)
    now = 0
    for who, gap, size, received in script:
        now += gap
        with contextlib.suppress(RateLimitedError):
            quota.settle(quota.admit(who, size, now), min(received, size or LARGEST), now)
    try:
        quota.admit(user, declared, now)
    except RateLimitedError as refused:
        seconds = refused.details["seconds"]
        assert refused.code == "rate_limited" and seconds >= 1
        quota.admit(user, declared, now + seconds * 1000)  # nothing else happened: admitted


def test_a_burst_is_counted_as_it_starts() -> None:
    quota = QuotaLedger(UploadLimits(3, 10_000, 100))
    started = [quota.admit(7, 10, 0) for _ in range(3)]  # none has finished yet
    with pytest.raises(RateLimitedError) as refused:
        quota.admit(7, 10, 0)
    assert refused.value.details["seconds"] == 20  # one upload comes back every 20 s
    assert "trop de fichiers" in refused.value.message_in("fr")
    quota.admit(8, 10, 0)  # another user is not concerned
    for reservation in started:
        quota.settle(reservation, 10, 1000)
    with pytest.raises(RateLimitedError):
        quota.admit(7, 10, 19_999)
    quota.admit(7, 10, 20_000)


def test_bytes_are_reserved_as_declared_then_settled_to_what_came() -> None:
    quota = QuotaLedger(UploadLimits(100, 1000, 600))
    first = quota.admit(1, None, 0)  # no Content-Length: the largest upload is reserved
    assert quota.remaining(1, 0)[1] == 400
    with pytest.raises(RateLimitedError):
        quota.admit(1, 500, 0)
    quota.settle(first, 100, 0)  # only 100 bytes came
    assert quota.remaining(1, 0)[1] == 900
    quota.admit(1, 500, 0)


def test_bytes_beyond_the_reservation_are_owed() -> None:
    quota = QuotaLedger(UploadLimits(100, 1000, 600))
    quota.settle(quota.admit(1, 10, 0), 601, 0)  # a body longer than it said
    assert quota.remaining(1, 0)[1] == 399


def test_users_whose_buckets_are_full_again_are_forgotten() -> None:
    quota = QuotaLedger(UploadLimits(2, 1000, 10))
    for user in range(100):
        quota.admit(user, 10, 0)
    assert len(quota.users) == 100
    quota.forget_full(MINUTE_MS // 2 - 1)
    assert len(quota.users) == 100
    quota.forget_full(MINUTE_MS // 2)  # half a minute gives back one upload of two
    assert quota.users == {}


def test_full_again_at_is_the_first_full_millisecond() -> None:
    limits = UploadLimits(3, 1000, 100)
    state = BudgetState(uploads=0, volume=-5 * MINUTE_MS, updated_at=1000)
    at = full_again_at(state, limits)
    assert is_full(state, limits, at) and not is_full(state, limits, at - 1)


def test_the_largest_upload_must_fit_in_a_minute() -> None:
    with pytest.raises(ValueError):
        UploadLimits(10, 999, 1000)
