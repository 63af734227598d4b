"""Property tests: random interleavings of appends, joins and leaves from concurrent tasks,
checked against a small in-memory model of the log, the intervals and the window.

The store is built inside each example (a fresh temporary directory), because hypothesis
runs many examples per test function and function-scoped fixtures would be shared by them.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chatd.core.conversations import AddMember, Leave, MessageBody, Operation, PostMessage
from chatd.core.errors import (
    AlreadyMemberError,
    ClientError,
    ConversationNotFound,
    NotAMemberError,
)
from chatd.core.events import Event, EventKind
from chatd.core.records import AppendResult, EventPage, Interval
from chatd.crypto.keyring import KeyRing
from chatd.store.contract import Store
from tests.conftest import create_conv, make_users
from tests.store.conftest import BACKENDS, check_rules, make_store

USERS = 4
RING = KeyRing.generate()


@dataclass(frozen=True)
class Step:
    task: int
    actor: int  # index into the users
    action: str  # "post", "add", "leave", "retry"
    target: int  # index of the user to add, or of the step a retry repeats


steps_strategy = st.lists(
    st.builds(
        Step,
        task=st.integers(0, 3),
        actor=st.integers(0, USERS - 1),
        action=st.sampled_from(["post", "post", "post", "add", "leave", "retry"]),
        target=st.integers(0, 10_000),
    ),
    min_size=1,
    max_size=40,
)


def build_ops(steps: list[Step], users: list[int], conv: int) -> list[Operation]:
    """One operation per step; a retry is an exact copy (same client_msg_id) of an earlier one."""
    ops: list[Operation] = []
    for i, step in enumerate(steps):
        actor = users[step.actor]
        if step.action == "retry" and ops:
            ops.append(ops[step.target % len(ops)])
        elif step.action == "add":
            ops.append(AddMember(conv, actor, users[step.target % USERS], f"op-{i}"))
        elif step.action == "leave":
            ops.append(Leave(conv, actor, f"op-{i}"))
        else:
            ops.append(PostMessage(conv, actor, MessageBody(f"text {i} by {actor}"), f"op-{i}"))
    return ops


# ----------------------------------------------------------------------------- the model


def model_intervals(log: list[Event]) -> dict[int, list[Interval]]:
    open_at: dict[int, int] = {}
    closed: dict[int, list[Interval]] = defaultdict(list)
    for e in log:
        if e.kind == EventKind.CREATED:
            for user in e.payload["members"]:
                open_at[user] = e.seq
        elif e.kind == EventKind.JOINED:
            open_at[e.payload["user"]] = e.seq
        elif e.kind == EventKind.LEFT:
            user = e.payload["user"]
            closed[user].append(Interval(open_at.pop(user), e.seq + 1))
    result = {u: list(ivs) for u, ivs in closed.items()}
    for user, joined in open_at.items():
        result.setdefault(user, []).append(Interval(joined, None))
    return {u: sorted(ivs, key=lambda iv: iv.joined_seq) for u, ivs in result.items()}


@dataclass(frozen=True)
class ModelView:
    visible: list[Event]
    start: int
    archived: bool

    def window(self) -> list[Event]:
        return [e for e in self.visible if e.seq >= self.start]

    def after(self, after_seq: int, limit: int) -> EventPage:
        archived = after_seq < self.start - 1 and any(
            after_seq < e.seq < self.start for e in self.visible
        )
        items = [e for e in self.visible if e.seq >= max(after_seq + 1, self.start)]
        return EventPage(0, tuple(items[:limit]), archived, len(items) > limit, self.start)

    def before(self, before_seq: int, limit: int) -> EventPage:
        items = [e for e in self.visible if self.start <= e.seq < before_seq]
        has_more = len(items) > limit
        return EventPage(
            0,
            tuple(items[-limit:]),
            self.archived and not has_more,
            has_more,
            self.start,
        )


def model_view(log: list[Event], intervals: list[Interval], window: int) -> ModelView:
    visible = [e for e in log if any(iv.contains(e.seq) for iv in intervals)]
    messages = [e.seq for e in visible if e.kind == EventKind.MESSAGE]
    if len(messages) > window:
        return ModelView(visible, messages[-(window + 1)] + 1, True)
    return ModelView(visible, intervals[0].joined_seq, False)


# ----------------------------------------------------------------------------- the scenario


async def scenario(
    backend: str, steps: list[Step], window: int, page_limit: int, creator_members: int
) -> None:
    with tempfile.TemporaryDirectory(prefix="chatd-prop-") as tmp:
        store = make_store(backend, Path(tmp), RING, visible_window=window, durable=False)
        await store.open()
        try:
            await run_and_check(store, steps, page_limit, creator_members)
        finally:
            await store.close()


async def run_and_check(
    store: Store, steps: list[Step], page_limit: int, creator_members: int
) -> None:
    users = await make_users(store, *(f"user{i}" for i in range(USERS)))
    created = await create_conv(store, users[0], users[1 : 1 + creator_members])
    conv = created.conv_id
    ops = build_ops(steps, users, conv)

    outcomes: dict[int, AppendResult | ClientError] = {}

    async def task(number: int) -> None:
        last_seq = 0
        for i, step in enumerate(steps):
            if step.task != number:
                continue
            try:
                result = await store.apply(ops[i])
            except ClientError as exc:
                outcomes[i] = exc
                continue
            outcomes[i] = result
            if not result.duplicate:
                # A task's operations are decided in the order it issued them.
                assert result.first_seq > last_seq
                last_seq = result.last_seq

    await asyncio.gather(*(task(n) for n in range(4)))
    assert len(outcomes) == len(ops)

    # Failures are rule errors, and only those the operations can meet.
    for i, outcome in outcomes.items():
        if isinstance(outcome, ClientError):
            assert isinstance(
                outcome, NotAMemberError | AlreadyMemberError | ConversationNotFound
            ), (i, outcome)

    # Seqs: dense, unique, and each belongs to exactly one original append.
    log_by_seq: dict[int, Event] = {e.seq: e for e in created.events}
    for outcome in outcomes.values():
        if isinstance(outcome, AppendResult) and not outcome.duplicate:
            assert outcome.conv_id == conv
            for e in outcome.events:
                assert e.seq not in log_by_seq, e
                log_by_seq[e.seq] = e
    last = max(log_by_seq)
    assert sorted(log_by_seq) == list(range(1, last + 1))
    log = [log_by_seq[s] for s in range(1, last + 1)]
    check_rules(log)

    # Idempotency: per client_msg_id at most one original; duplicates repeat its seqs.
    by_id: dict[str, list[AppendResult]] = defaultdict(list)
    for i, outcome in outcomes.items():
        if isinstance(outcome, AppendResult):
            by_id[ops[i].client_msg_id].append(outcome)
    for results in by_id.values():
        originals = [r for r in results if not r.duplicate]
        assert len(originals) == 1, results
        assert all(
            (r.first_seq, r.last_seq) == (originals[0].first_seq, originals[0].last_seq)
            for r in results
        )

    # Reads: every user's every read path is exactly what the model allows.
    intervals = model_intervals(log)
    members_now = {u for u, ivs in intervals.items() if ivs[-1].left_seq is None}
    assert await store.current_members(conv) == members_now
    for user in users:
        assert await store.intervals(user, conv) == tuple(intervals.get(user, ()))
        if user not in intervals:
            with pytest.raises(ConversationNotFound):
                await store.visible_window(user, conv)
            continue
        view = model_view(log, intervals[user], store.window_size)
        window = await store.visible_window(user, conv)
        assert list(window.events) == view.window(), user
        assert (window.archived, window.window_start, window.has_more) == (
            view.archived,
            view.start,
            False,
        )
        for after in range(0, last + 2):
            page = await store.events_after(user, conv, after, page_limit)
            assert page == EventPage(conv, *_fields(view.after(after, page_limit))), (
                user,
                after,
            )
        for before in range(1, last + 2):
            page = await store.events_before(user, conv, before, page_limit)
            assert page == EventPage(conv, *_fields(view.before(before, page_limit))), (
                user,
                before,
            )
        heads = await store.conversation_heads(user)
        assert [(h.conv_id, h.last_visible_seq) for h in heads] == [(conv, view.visible[-1].seq)]
        assert heads[0].last_event == view.visible[-1]
        assert heads[0].is_member == (user in members_now)

    # Retrying every successful operation now appends nothing and repeats its seqs.
    for i, outcome in outcomes.items():
        if isinstance(outcome, AppendResult):
            again = await store.apply(ops[i])
            assert again.duplicate is True
            assert (again.first_seq, again.last_seq) == (outcome.first_seq, outcome.last_seq)
    report = await store.verify()
    assert report.ok and report.events == last


def _fields(page: EventPage) -> tuple[object, ...]:
    return (page.events, page.archived, page.has_more, page.window_start)


@pytest.mark.parametrize("backend", BACKENDS)
@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    steps=steps_strategy,
    window=st.sampled_from([1, 2, 5]),
    page_limit=st.integers(1, 4),
    creator_members=st.integers(1, USERS - 1),
)
def test_random_interleavings_match_the_model(
    backend: str, steps: list[Step], window: int, page_limit: int, creator_members: int
) -> None:
    asyncio.run(scenario(backend, steps, window, page_limit, creator_members))
