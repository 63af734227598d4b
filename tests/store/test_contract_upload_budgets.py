"""Contract: the upload quota's buckets (:class:`chatd.store.contract.UploadBudgets`).

Every backend must admit exactly what :class:`chatd.core.upload_quota.QuotaLedger`, the
reference, admits — however many uploads race, on one node or two sharing the database —
keep its buckets across a restart, and forget the users whose buckets are full again.
"""

from __future__ import annotations

import asyncio
import sqlite3

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chatd.core.errors import RateLimitedError
from chatd.core.upload_quota import MINUTE_MS, QuotaLedger, Reservation, UploadLimits
from chatd.crypto.keyring import KeyRing
from chatd.store.contract import Store
from tests.store.conftest import (
    BACKENDS,
    FreshDatabases,
    StoreFactory,
    on_a_fresh_store,
)

LIMITS = UploadLimits(uploads_per_minute=5, bytes_per_minute=10_000, max_upload_bytes=4_000)
T0 = 1_700_000_000_000
ALICE, BOB = 7, 8


async def admitted_or_refused(
    store: Store, user_id: int, declared: int | None, now_ms: int
) -> Reservation | int:
    """The reservation, or the seconds the refusal says to wait."""
    try:
        return await store.admit_upload(user_id, declared, LIMITS, now_ms)
    except RateLimitedError as refused:
        assert refused.code == "rate_limited"
        return int(refused.details["seconds"])


async def test_a_parallel_burst_gets_exactly_the_quota_through(store: Store) -> None:
    answers = await asyncio.gather(*(admitted_or_refused(store, ALICE, 10, T0) for _ in range(30)))
    admitted = [a for a in answers if isinstance(a, Reservation)]
    assert len(admitted) == LIMITS.uploads_per_minute
    assert {a for a in answers if isinstance(a, int)} == {12}  # one upload back every 12 s
    assert isinstance(await admitted_or_refused(store, BOB, 10, T0), Reservation)  # per user


async def test_the_refusal_is_the_french_sentence(store: Store) -> None:
    for _ in range(LIMITS.uploads_per_minute):
        await store.admit_upload(ALICE, 10, LIMITS, T0)
    with pytest.raises(RateLimitedError) as refused:
        await store.admit_upload(ALICE, 10, LIMITS, T0)
    assert "trop de fichiers" in refused.value.message_in("fr")
    assert refused.value.details["seconds"] == 12


async def test_bytes_are_reserved_as_declared_then_settled_to_what_came(store: Store) -> None:
    first = await store.admit_upload(ALICE, None, LIMITS, T0)  # the largest is reserved
    assert first.reserved == LIMITS.max_upload_bytes
    second = await store.admit_upload(ALICE, 4_000, LIMITS, T0)
    assert second.reserved == 4_000
    with pytest.raises(RateLimitedError):  # 2 000 left
        await store.admit_upload(ALICE, 3_000, LIMITS, T0)
    await store.settle_upload(first, 100, T0)  # only 100 bytes came: 3 900 back
    await store.admit_upload(ALICE, 3_000, LIMITS, T0)


async def test_bytes_beyond_the_reservation_are_owed(store: Store) -> None:
    small = await store.admit_upload(ALICE, 10, LIMITS, T0)
    await store.settle_upload(small, LIMITS.max_upload_bytes + 1, T0)  # a body longer than said
    await store.admit_upload(ALICE, 4_000, LIMITS, T0)  # 10 000 - 4 001 - 4 000 = 1 999 left
    with pytest.raises(RateLimitedError):
        await store.admit_upload(ALICE, 2_000, LIMITS, T0)
    await store.admit_upload(ALICE, 1_999, LIMITS, T0)


async def test_the_buckets_refill_at_the_minutes_rate(store: Store) -> None:
    for _ in range(LIMITS.uploads_per_minute):
        await store.admit_upload(ALICE, 0, LIMITS, T0)
    back = T0 + MINUTE_MS // LIMITS.uploads_per_minute
    assert await admitted_or_refused(store, ALICE, 0, back - 1) == 1
    assert isinstance(await admitted_or_refused(store, ALICE, 0, back), Reservation)
    assert await admitted_or_refused(store, ALICE, 0, back) == 12


async def test_two_nodes_bursting_at_once_share_one_quota(store_factory: StoreFactory) -> None:
    """Two stores on one database (two nodes), each racing its own burst, at three
    instants: together they get what one ledger gives, never a quota each."""
    nodes = [await store_factory.open(), await store_factory.open()]
    ledger = QuotaLedger(LIMITS)
    for now in (T0, T0 + 20_000, T0 + 40_000):
        answers = await asyncio.gather(
            *(
                admitted_or_refused(nodes[i % 2], user, 100, now)
                for i in range(40)
                for user in (1, 2)
            )
        )
        for user in (1, 2):
            expected = 0
            while True:
                try:
                    ledger.admit(user, 100, now)
                except RateLimitedError:
                    break
                expected += 1
            got = [a for a in answers if isinstance(a, Reservation) and a.user_id == user]
            assert len(got) == expected
        assert len([a for a in answers if isinstance(a, Reservation)]) <= 2 * 5


async def test_the_buckets_survive_a_restart(store_factory: StoreFactory) -> None:
    store = await store_factory.open()
    for _ in range(LIMITS.uploads_per_minute):
        await store.admit_upload(ALICE, 10, LIMITS, T0)
    await store.close()
    reopened = await store_factory.open()
    assert await admitted_or_refused(reopened, ALICE, 10, T0 + 1_000) == 11


async def test_users_whose_buckets_are_full_again_are_forgotten(
    store_factory: StoreFactory,
) -> None:
    store = await store_factory.open()
    for user in range(1, 21):
        await store.admit_upload(user, 10, LIMITS, T0)
    unsettled = await store.admit_upload(99, 4_000, LIMITS, T0)
    assert await budget_rows(store_factory) == [*range(1, 21), 99]
    await store.settle_upload(unsettled, 0, T0 + MINUTE_MS)  # full again: its row goes
    assert await budget_rows(store_factory) == list(range(1, 21))
    # 12 s give back the one upload each spent, and 10 bytes need 60 ms: all full again.
    await store.admit_upload(ALICE, 10, LIMITS, T0 + 12_000)
    assert await budget_rows(store_factory) == [ALICE]


async def budget_rows(factory: StoreFactory) -> list[int]:
    """The user ids of the rows of ``upload_budgets``: ids and numbers, nothing else."""
    query = "SELECT * FROM upload_budgets ORDER BY user_id"
    if factory.dsn is not None:
        conn = await asyncpg.connect(factory.dsn)
        try:
            rows = [tuple(r) for r in await conn.fetch(query)]
        finally:
            await conn.close()
    else:
        with sqlite3.connect(factory.tmp_path / "chatd.sqlite3") as lite:
            rows = lite.execute(query).fetchall()
    assert all(isinstance(value, int) for row in rows for value in row)
    return [row[0] for row in rows]


# ----------------------------------------------------------------------------- the reference

SMALL = UploadLimits(uploads_per_minute=3, bytes_per_minute=1_000, max_upload_bytes=400)
RING = KeyRing.generate()

script_strategy = st.lists(
    st.one_of(
        # admit: user, declared size (-1: none)
        st.tuples(st.just("admit"), st.integers(1, 2), st.integers(-1, 400)),
        # settle an upload in flight: which, bytes received (401: a refused body's)
        st.tuples(st.just("settle"), st.integers(0, 20), st.integers(0, 401)),
        st.tuples(st.just("wait"), st.integers(1, 40_000), st.just(0)),
    ),
    max_size=40,
)


@pytest.mark.parametrize("backend", sorted(BACKENDS))
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(script=script_strategy)
def test_the_store_admits_what_the_reference_admits_and_no_more_than_the_rate(
    fresh_databases: FreshDatabases, backend: str, script: list[tuple[str, int, int]]
) -> None:
    async def body(store: Store) -> None:
        within_the_rate(await compare(store, script))

    on_a_fresh_store(fresh_databases, backend, RING, body)  # a database per example


# What one event did to a user's buckets: (user, time, admission?, bytes charged).  An
# admission charges what it reserved; a settlement gives back what was not used (a negative
# charge), or charges what came beyond it.
Charge = tuple[int, int, bool, int]


async def compare(store: Store, script: list[tuple[str, int, int]]) -> list[Charge]:
    ledger = QuotaLedger(SMALL)
    now = T0
    in_flight: list[tuple[Reservation, Reservation]] = []  # (store's, ledger's)
    charges: list[Charge] = []
    for action, a, b in script:
        if action == "wait":
            now += a
        elif action == "admit":
            declared = None if b < 0 else b
            try:
                expected: Reservation | int = ledger.admit(a, declared, now)
            except RateLimitedError as refused:
                expected = int(refused.details["seconds"])
            try:
                mine: Reservation | int = await store.admit_upload(a, declared, SMALL, now)
            except RateLimitedError as refused:
                mine = int(refused.details["seconds"])
            assert mine == expected
            if isinstance(mine, Reservation) and isinstance(expected, Reservation):
                in_flight.append((mine, expected))
                charges.append((a, now, True, mine.reserved))
        elif in_flight:
            theirs, ours = in_flight.pop(a % len(in_flight))
            await store.settle_upload(theirs, b, now)
            ledger.settle(ours, b, now)
            charges.append((theirs.user_id, now, False, b - theirs.reserved))
    return charges


def within_the_rate(charges: list[Charge]) -> None:
    """From any admission to any later one of the same user, ``T`` ms apart, what was
    admitted (uploads; bytes charged less bytes given back) is at most ``amount × (1 + T /
    60 s)``."""
    for user in {c[0] for c in charges}:
        mine = [c for c in charges if c[0] == user]
        admissions = [i for i, c in enumerate(mine) if c[2]]
        for i in admissions:
            for j in (k for k in admissions if k >= i):
                span = mine[j][1] - mine[i][1]
                between = mine[i : j + 1]
                uploads = sum(1 for c in between if c[2])
                volume = sum(c[3] for c in between)
                assert uploads * MINUTE_MS <= SMALL.uploads_per_minute * (MINUTE_MS + span)
                assert volume * MINUTE_MS <= SMALL.bytes_per_minute * (MINUTE_MS + span)
