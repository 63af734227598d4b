"""The per-user upload quota (chatd/core/upload_quota.py): uploads and bytes a minute."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chatd.core.errors import RateLimitedError
from chatd.core.upload_quota import FIRST_PRUNE, MINUTE, UploadQuota

UPLOADS, VOLUME, LARGEST = 5, 1000, 400
EPSILON = 1e-6

# One attempt: (user, seconds since the previous attempt, declared size or None, size received)
attempts = st.lists(
    st.tuples(
        st.integers(1, 3),
        st.floats(0, 30, allow_nan=False),
        st.one_of(st.none(), st.integers(0, LARGEST)),
        st.integers(0, LARGEST),
    ),
    max_size=80,
)


def run(script: list[tuple[int, float, int | None, int]]) -> list[tuple[int, float, int]]:
    """Play ``script`` against one quota; the admitted uploads as (user, time, received)."""
    quota = UploadQuota(UPLOADS, VOLUME, LARGEST)
    now = 0.0
    admitted: list[tuple[int, float, int]] = []
    for user, gap, declared, received in script:
        now += gap
        if declared is not None:
            received = min(received, declared)  # a body never exceeds its Content-Length
        try:
            reservation = quota.admit(user, now, declared)
        except RateLimitedError:
            continue
        quota.settle(reservation, received, now)
        admitted.append((user, now, received))
    return admitted


@settings(max_examples=300, deadline=None)
@given(attempts)
def test_no_user_gets_more_than_a_minutes_worth_plus_the_refill(
    script: list[tuple[int, float, int | None, int]],
) -> None:
    admitted = run(script)
    for user in {u for u, _, _ in admitted}:
        mine = [(t, size) for u, t, size in admitted if u == user]
        for i, (start, _) in enumerate(mine):
            for end, _ in mine[i:]:
                inside = [size for t, size in mine if start <= t <= end]
                allowance = 1 + (end - start) / MINUTE
                assert len(inside) <= UPLOADS * allowance + EPSILON
                assert sum(inside) <= VOLUME * allowance + EPSILON


@settings(max_examples=200, deadline=None)
@given(attempts, st.integers(1, 3), st.one_of(st.none(), st.integers(0, LARGEST)))
def test_a_refusal_says_how_long_to_wait_and_that_wait_is_enough(
    script: list[tuple[int, float, int | None, int]], user: int, declared: int | None
) -> None:
    quota = UploadQuota(UPLOADS, VOLUME, LARGEST)
    now = 0.0
    for who, gap, size, received in script:
        now += gap
        with contextlib.suppress(RateLimitedError):
            quota.settle(quota.admit(who, now, size), min(received, size or LARGEST), now)
    try:
        quota.admit(user, now, declared)
    except RateLimitedError as refused:
        seconds = refused.details["seconds"]
        assert refused.code == "rate_limited" and seconds >= 1
        quota.admit(user, now + seconds, declared)  # nothing else happened: admitted


def test_a_burst_is_counted_as_it_starts() -> None:
    quota = UploadQuota(3, 10_000, 100)
    started = [quota.admit(7, 0.0, 10) for _ in range(3)]  # none has finished yet
    with pytest.raises(RateLimitedError) as refused:
        quota.admit(7, 0.0, 10)
    assert refused.value.details["seconds"] == 20  # one upload comes back every 20 s
    assert "trop de fichiers" in refused.value.message_in("fr")
    quota.admit(8, 0.0, 10)  # another user is not concerned
    for reservation in started:
        quota.settle(reservation, 10, 1.0)
    quota.admit(7, 20.0, 10)


def test_bytes_are_reserved_as_declared_then_settled_to_what_came() -> None:
    quota = UploadQuota(100, 1000, 600)
    first = quota.admit(1, 0.0, None)  # no Content-Length: the largest upload is reserved
    assert quota.remaining(1, 0.0)[1] == 400
    with pytest.raises(RateLimitedError):
        quota.admit(1, 0.0, 500)
    quota.settle(first, 100, 0.0)  # only 100 bytes came
    assert quota.remaining(1, 0.0)[1] == 900
    quota.admit(1, 0.0, 500)


def test_users_whose_buckets_are_full_again_are_forgotten() -> None:
    quota = UploadQuota(2, 1000, 10)
    for user in range(FIRST_PRUNE):
        quota.settle(quota.admit(user, 0.0, 10), 10, 0.0)
    assert len(quota) == FIRST_PRUNE
    quota.admit(FIRST_PRUNE, MINUTE, 10)  # a minute later, every earlier bucket is full
    assert len(quota) == 1


def test_the_largest_upload_must_fit_in_a_minute() -> None:
    with pytest.raises(ValueError):
        UploadQuota(10, 999, 1000)
