"""Contract: the login throttle's attempts (:class:`chatd.store.contract.LoginAttempts`).

Every backend must admit exactly what :class:`chatd.core.login_throttle.AttemptLedger`, the
reference, admits — however many attempts race — keep its attempts across a restart, and
never keep what was typed.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chatd.core.login_throttle import Admission, AttemptLedger, Budget, ThrottleLimits
from chatd.crypto.keyring import KeyRing
from chatd.store.contract import Store
from tests.store.conftest import (
    BACKENDS,
    FreshDatabases,
    StoreFactory,
    on_a_fresh_store,
)

LIMITS = ThrottleLimits(per_login=5, per_address=8, overall=20, window_ms=60_000)
T0 = 1_700_000_000_000


async def test_a_parallel_burst_gets_exactly_the_budget_through(store: Store) -> None:
    answers = await asyncio.gather(
        *(store.begin_login_attempt("alice", f"10.0.0.{i}", LIMITS, T0) for i in range(50))
    )
    admitted = [a for a in answers if a.attempt is not None]
    assert len(admitted) == LIMITS.per_login
    assert {a.refused_by for a in answers if a.attempt is None} == {Budget.LOGIN}
    assert len({a.attempt for a in admitted}) == LIMITS.per_login  # distinct ids


async def test_two_nodes_bursting_at_once_share_one_budget(store_factory: StoreFactory) -> None:
    """Two stores on one database (two nodes), each racing its own burst: the attempts of
    both count against the same budgets, however they interleave."""
    nodes = [await store_factory.open(), await store_factory.open()]
    logins = [f"user{i % 6}" for i in range(60)]  # 6 logins x 5 > 20 overall
    answers = await asyncio.gather(
        *(
            nodes[i % 2].begin_login_attempt(login, f"10.0.{i % 2}.{i}", LIMITS, T0)
            for i, login in enumerate(logins)
        )
    )
    admitted = [(login, a.attempt) for login, a in zip(logins, answers, strict=True) if a.attempt]
    assert len(admitted) == LIMITS.overall
    assert len({attempt for _, attempt in admitted}) == LIMITS.overall  # distinct ids
    per_login = Counter(login for login, _ in admitted)
    assert max(per_login.values()) <= LIMITS.per_login
    assert {a.refused_by for a in answers if a.attempt is None} <= {Budget.LOGIN, Budget.GLOBAL}


async def test_a_success_clears_finished_failures_but_not_those_in_flight(store: Store) -> None:
    first, racing, right = [
        (await store.begin_login_attempt("alice", "10.0.0.1", LIMITS, T0)).attempt for _ in range(3)
    ]
    assert first is not None and racing is not None and right is not None
    await store.end_login_attempt(first, succeeded=False, now_ms=T0 + 1)
    await store.end_login_attempt(right, succeeded=True, now_ms=T0 + 2)
    # ``racing`` still counts: four more may start, not five.
    more = [await store.begin_login_attempt("alice", "10.0.0.2", LIMITS, T0 + 3) for _ in range(5)]
    assert [a.refused_by for a in more] == [None] * 4 + [Budget.LOGIN]


async def test_attempts_count_for_the_window_then_no_more(store: Store) -> None:
    for _ in range(5):
        admission = await store.begin_login_attempt("bob", "10.0.0.1", LIMITS, T0)
        assert admission.attempt is not None
        await store.end_login_attempt(admission.attempt, succeeded=False, now_ms=T0)
    last = T0 + LIMITS.window_ms - 1
    assert await store.begin_login_attempt("bob", "10.0.0.1", LIMITS, last) == Admission(
        None, Budget.LOGIN
    )
    later = await store.begin_login_attempt("bob", "10.0.0.1", LIMITS, T0 + LIMITS.window_ms)
    assert later.attempt is not None


async def test_address_and_global_budgets(store: Store) -> None:
    sprayed = [
        await store.begin_login_attempt(f"user{i}", "192.0.2.7", LIMITS, T0) for i in range(10)
    ]
    assert [a.refused_by for a in sprayed] == [None] * 8 + [Budget.ADDRESS] * 2
    spread = [
        await store.begin_login_attempt(f"other{i}", f"198.51.100.{i}", LIMITS, T0)
        for i in range(14)
    ]
    assert [a.refused_by for a in spread] == [None] * 12 + [Budget.GLOBAL] * 2


async def test_attempts_survive_a_restart(store_factory: StoreFactory) -> None:
    store = await store_factory.open()
    for _ in range(5):
        assert (await store.begin_login_attempt("carol", "10.0.0.1", LIMITS, T0)).attempt
    await store.close()
    reopened = await store_factory.open()
    refused = await reopened.begin_login_attempt("carol", "10.0.0.1", LIMITS, T0 + 10)
    assert refused.refused_by is Budget.LOGIN


async def test_what_was_typed_is_not_kept(store_factory: StoreFactory, tmp_path: Path) -> None:
    typed = "Motdepasse-tape-dans-le-champ-login-73"
    address = "203.0.113.99"
    store = await store_factory.open()
    admission = await store.begin_login_attempt(typed.lower(), address, LIMITS, T0)
    assert admission.attempt is not None
    await store.end_login_attempt(admission.attempt, succeeded=False, now_ms=T0 + 1)
    await store.close()
    for path in tmp_path.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert typed.lower().encode() not in data, path
            assert address.encode() not in data, path
    if store_factory.dsn is not None:  # a server's files are not ours to read: its rows are
        rows = await every_row_as_text(store_factory.dsn)
        for secret in (typed.lower().encode(), address.encode()):
            assert secret not in rows and secret.hex().encode() not in rows


async def every_row_as_text(dsn: str) -> bytes:
    """Every row of every table of the database, as PostgreSQL prints it (BYTEA in hex)."""
    conn = await asyncpg.connect(dsn)
    try:
        tables = await conn.fetch(
            "SELECT quote_ident(table_name) FROM information_schema.tables"
            " WHERE table_schema = 'public' AND table_type = 'BASE TABLE'"
        )
        text = [
            await conn.fetchval(f"SELECT coalesce(string_agg(t::text, ''), '') FROM {name} t")
            for (name,) in tables
        ]
    finally:
        await conn.close()
    return "".join(text).encode()


# ----------------------------------------------------------------------------- the reference

SMALL = ThrottleLimits(per_login=2, per_address=3, overall=5, window_ms=50)
RING = KeyRing.generate()

script_strategy = st.lists(
    st.one_of(
        st.tuples(st.just("begin"), st.integers(0, 2), st.integers(0, 2)),
        st.tuples(st.just("fail"), st.integers(0, 20), st.just(0)),
        st.tuples(st.just("succeed"), st.integers(0, 20), st.just(0)),
        st.tuples(st.just("wait"), st.integers(1, 30), st.just(0)),
    ),
    max_size=30,
)


@pytest.mark.parametrize("backend", sorted(BACKENDS))
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(script=script_strategy)
def test_the_store_admits_what_the_reference_admits(
    fresh_databases: FreshDatabases, backend: str, script: list[tuple[str, int, int]]
) -> None:
    async def body(store: Store) -> None:
        await compare(store, script)

    on_a_fresh_store(fresh_databases, backend, RING, body)  # a database per example


async def compare(store: Store, script: list[tuple[str, int, int]]) -> None:
    ledger = AttemptLedger(SMALL)
    now = T0
    in_flight: list[tuple[int, int]] = []  # (store's id, ledger's id)
    for action, a, b in script:
        if action == "wait":
            now += a
        elif action == "begin":
            login, address = f"login{a}", f"10.0.0.{b}"
            mine = await store.begin_login_attempt(login, address, SMALL, now)
            expected = ledger.begin(login, address, now)
            assert mine.refused_by == expected.refused_by
            if mine.attempt is not None and expected.attempt is not None:
                in_flight.append((mine.attempt, expected.attempt))
        elif in_flight:
            store_id, ledger_id = in_flight.pop(a % len(in_flight))
            succeeded = action == "succeed"
            await store.end_login_attempt(store_id, succeeded=succeeded, now_ms=now)
            ledger.end(ledger_id, succeeded=succeeded)
