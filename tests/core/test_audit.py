"""The rules of an admin audit record (pure): ids and counts only, fixed per action; the
reference filter of a listing; the chain's hash covers every field."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chatd.core.audit import (
    ACTIONS,
    ActionKind,
    Actor,
    ActorKind,
    AdminAction,
    AuditEntry,
    AuditQuery,
    TargetKind,
)
from chatd.crypto.chain import GENESIS, audit_link_hash

ALICE = Actor.os_user("alice")
KEY = bytes(range(32))

identifiers = st.text(
    st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=64
)


@st.composite
def actions(draw: st.DrawFn) -> AdminAction:
    kind = draw(st.sampled_from(list(ActionKind)))
    counts = {name: draw(st.integers(0, 2**40)) for name in ACTIONS[kind].counts}
    actor = Actor(draw(st.sampled_from(list(ActorKind))), draw(identifiers))
    return AdminAction(actor, kind, draw(identifiers), counts)


def test_every_action_has_a_rule_and_a_sentence_with_its_fields() -> None:
    assert set(ACTIONS) == set(ActionKind)
    for rule in ACTIONS.values():
        assert "{target}" in rule.sentence
        for name in rule.counts:
            assert "{" + name + "}" in rule.sentence


def test_a_record_is_complete_only_with_its_target_and_every_count() -> None:
    pending = AdminAction(ALICE, ActionKind.PASSWORD_RESET)
    with pytest.raises(ValueError):
        pending.complete()
    with pytest.raises(ValueError):
        pending.with_target("3").complete()
    done = pending.with_target("3").with_counts(sessions_closed=2).complete()
    assert (done.target, dict(done.counts), done.target_kind) == (
        "3",
        {"sessions_closed": 2},
        "user",
    )
    assert str(done.said()) == "one-time password given to account 3 (sessions closed: 2)"
    assert done.said().render("fr") == (
        "mot de passe à usage unique donné au compte 3 (sessions fermées\u00a0: 2)"
    )


@pytest.mark.parametrize(
    "build",
    [
        lambda: AdminAction(ALICE, ActionKind.USER_CREATED, "3", {"sessions_closed": 1}),
        lambda: AdminAction(ALICE, ActionKind.KEY_ROTATED, "k", {"data_keys": -1}),
        lambda: AdminAction(ALICE, ActionKind.KEY_ROTATED, "k", {"data_keys": True}),
        lambda: AdminAction(ALICE, ActionKind.KEY_RETIRED, "two words\n"),
        lambda: AdminAction(ALICE, ActionKind.KEY_RETIRED, "x" * 65),
        lambda: Actor.os_user(""),
        lambda: Actor.os_user("\x1b[2J"),
    ],
)
def test_a_record_holds_identifiers_and_counts_only(build: object) -> None:
    with pytest.raises(ValueError):
        build()  # type: ignore[operator]


def test_targets_are_ids_of_the_right_kind() -> None:
    kinds = {kind: ACTIONS[kind].target for kind in ActionKind}
    assert kinds[ActionKind.USER_CREATED] is TargetKind.USER
    assert kinds[ActionKind.KEY_RETIRED] is TargetKind.KEY
    assert kinds[ActionKind.CONVERSATION_SHREDDED] is TargetKind.CONVERSATION
    assert kinds[ActionKind.EPOCH_DECLARED] is TargetKind.EPOCH


@given(actions(), actions(), st.integers(1, 2**40), st.integers(0, 2**50))
def test_the_chain_hash_covers_every_field(
    first: AdminAction, second: AdminAction, seq: int, at_ms: int
) -> None:
    """Two records hash alike only if every field is equal (and the link, place, time)."""

    def mac(action: AdminAction, prev: bytes = GENESIS, at: int = at_ms, key: bytes = KEY) -> bytes:
        return audit_link_hash(key, prev, seq, at, action)

    assert (mac(first) == mac(second)) == (first == second)
    assert mac(first) != mac(first, prev=bytes([1]) * 32)
    assert mac(first) != mac(first, at=at_ms + 1)
    assert mac(first) != audit_link_hash(KEY, GENESIS, seq + 1, at_ms, first)
    assert mac(first) != mac(first, key=bytes(32))  # without the key, no forging


@given(
    st.lists(st.tuples(st.integers(0, 100), st.sampled_from(list(ActionKind))), max_size=30),
    st.none() | st.integers(0, 100),
    st.none() | st.integers(0, 100),
    st.frozensets(st.sampled_from(list(ActionKind))),
    st.integers(0, 30),
)
def test_the_reference_filter_is_the_conjunction_of_its_parts(
    rows: list[tuple[int, ActionKind]],
    since: int | None,
    before: int | None,
    kinds: frozenset[ActionKind],
    after: int,
) -> None:
    query = AuditQuery(since, before, kinds, after)
    for seq, (at, kind) in enumerate(rows, 1):
        counts = dict.fromkeys(ACTIONS[kind].counts, 0)
        entry = AuditEntry(seq, at, AdminAction(ALICE, kind, "1", counts), GENESIS, GENESIS)
        expected = (
            seq > after
            and (since is None or at >= since)
            and (before is None or at < before)
            and (not kinds or kind in kinds)
        )
        assert query.matches(entry) == expected
