"""The byte budget of the sockets' queues (chatd/gateway/budget.py), as pure rules.

The invariants, for any sequence of frames admitted, sent and sessions closed: no session
holds more than its share, the node no more than its total, and the node's count is the sum
of its sessions'.  When the node is full the largest holder goes first.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chatd.core.devices import FAMILIES, device_family
from chatd.gateway.budget import QueueBudget

SESSIONS = st.integers(0, 5)
STEP = st.one_of(
    st.tuples(st.just("admit"), SESSIONS, st.integers(0, 3000)),
    st.tuples(st.just("release"), SESSIONS, st.integers(0, 3000)),
    st.tuples(st.just("forget"), SESSIONS, st.just(0)),
)


@settings(max_examples=300, deadline=None)
@given(
    per_session=st.integers(1, 2000),
    extra=st.integers(0, 6000),
    steps=st.lists(STEP, max_size=80),
)
def test_no_session_nor_the_node_ever_holds_more_than_its_budget(
    per_session: int, extra: int, steps: list[tuple[str, int, int]]
) -> None:
    budget: QueueBudget[int] = QueueBudget(per_session, per_session + extra)
    for action, key, size in steps:
        before = {k: budget.held(k) for k in range(6)}
        if action == "admit":
            verdict = budget.admit(key, size)
            if verdict.accepted:
                assert budget.held(key) == before[key] + size - (size if key in verdict.shed else 0)
            for shed in verdict.shed:
                assert budget.held(shed) == 0  # forgotten: the hub closes it
            if verdict.shed and key not in verdict.shed:
                # the largest holders went first: nobody kept holds more than one shed did
                shed_sizes = [before[k] for k in verdict.shed]
                kept = [before[k] for k in range(6) if k not in verdict.shed and k != key]
                assert all(k <= min(shed_sizes) for k in kept)
        elif action == "release":
            budget.release(key, size)
            assert budget.held(key) == max(0, before[key] - size)
        else:
            budget.forget(key)
            assert budget.held(key) == 0
        held = [budget.held(k) for k in range(6)]
        assert all(0 <= h <= per_session for h in held)
        assert budget.held_total == sum(held) <= budget.total


def test_a_session_over_its_share_is_refused_and_forgotten() -> None:
    budget: QueueBudget[str] = QueueBudget(1000, 10_000)
    assert budget.admit("a", 600).accepted
    assert budget.paused("a")  # over a quarter of its share: its requests wait
    verdict = budget.admit("a", 500)
    assert (verdict.accepted, verdict.shed, verdict.node_full) == (False, ("a",), False)
    assert budget.held("a") == 0 and budget.held_total == 0


def test_a_full_node_sheds_the_largest_holder_not_the_small_ones() -> None:
    budget: QueueBudget[str] = QueueBudget(1000, 2000)
    assert budget.admit("big", 900).accepted
    assert budget.admit("small", 300).accepted
    assert budget.admit("medium", 700).accepted
    verdict = budget.admit("small", 200)
    assert verdict.accepted and verdict.shed == ("big",) and verdict.node_full
    assert (budget.held("small"), budget.held("medium"), budget.held_total) == (500, 700, 1200)


def test_a_full_node_refuses_the_asker_when_it_is_the_largest() -> None:
    budget: QueueBudget[str] = QueueBudget(1000, 1500)
    assert budget.admit("a", 800).accepted and budget.admit("b", 600).accepted
    verdict = budget.admit("a", 150)
    assert (verdict.accepted, verdict.shed, verdict.node_full) == (False, ("a",), True)
    assert (budget.held("a"), budget.held("b"), budget.held_total) == (0, 600, 600)


def test_a_share_larger_than_the_node_is_refused() -> None:
    with pytest.raises(ValueError):
        QueueBudget(2000, 1000)


@given(st.text(max_size=300))
def test_a_device_is_always_a_word_of_the_fixed_list(user_agent: str) -> None:
    assert device_family(user_agent) in FAMILIES


def test_device_families_of_common_clients() -> None:
    assert device_family(None) is None
    assert device_family("chatd-cli") == "chatd-cli"
    firefox = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
    assert device_family(firefox) == "Firefox"
    chrome = (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko)"
        " Chrome/126.0.0.0 Safari/537.36"
    )
    assert device_family(chrome) == "Chrome"
    assert device_family(chrome + " Edg/126.0.0.0") == "Edge"
    assert device_family("Dr Martin's phone; DROP TABLE users") == "other"
