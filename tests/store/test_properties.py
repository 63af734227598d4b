"""Property tests: random interleavings of appends, joins and leaves from concurrent tasks,
checked against the log they wrote and :mod:`chatd.core.visibility`, the reference rule of
intervals, windows, pages, audiences and unread counts: every read path of every backend
must say exactly what the reference says.

The store is built inside each example (a fresh temporary directory), because hypothesis
runs many examples per test function and function-scoped fixtures would be shared by them.
A server backend gets a fresh database per example too (:func:`example_databases`): a copy of
a template migrated once per test, so that an example does not pay for the migration; its
examples are fewer (:data:`EXAMPLES`), each costing a database and a pool.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import tempfile
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chatd.core import visibility
from chatd.core.conversations import AddMember, Leave, MessageBody, Operation, PostMessage
from chatd.core.errors import (
    AlreadyMemberError,
    ClientError,
    ConversationNotFound,
    NotAMemberError,
)
from chatd.core.events import Event
from chatd.core.records import AppendResult, Interval, ReadState
from chatd.crypto.keyring import KeyRing
from chatd.store.contract import Store
from tests.conftest import create_conv, make_users
from tests.servers.postgres import PostgresServer
from tests.store.conftest import BACKENDS, SERVER_BACKENDS, check_rules, make_store

USERS = 4
RING = KeyRing.generate()
# Examples per backend: a server backend's example creates and drops a database.
EXAMPLES = {"sqlite": 150, "postgres": 25}
DatabaseFor = Callable[[], AbstractContextManager[str | None]]
_template_numbers = itertools.count(1)


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


# ----------------------------------------------------------------------------- the scenario


@pytest.fixture
def example_databases(request: pytest.FixtureRequest, backend: str) -> Iterator[DatabaseFor]:
    """``database()`` → a context manager giving one example its own database (its DSN), or
    None for a backend without a server."""
    if backend not in SERVER_BACKENDS:
        yield lambda: nullcontext(None)
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    if not server.running:
        server.start()
    template = f"prop_template_{os.getpid()}_{next(_template_numbers)}"
    numbers = itertools.count(1)

    async def migrate(dsn: str) -> None:
        with tempfile.TemporaryDirectory(prefix="chatd-prop-") as tmp:
            store = make_store(backend, Path(tmp), RING, dsn=dsn)
            await store.open()  # migrates
            await store.close()

    @contextmanager
    def database() -> Iterator[str | None]:
        name = f"{template}_{next(numbers)}"
        dsn = server.create_database(name, template=template)
        try:
            yield dsn
        finally:
            server.drop_database(name)

    asyncio.run(migrate(server.create_database(template)))
    try:
        yield database
    finally:
        server.drop_database(template)


async def scenario(
    backend: str,
    dsn: str | None,
    steps: list[Step],
    window: int,
    page_limit: int,
    creator_members: int,
) -> None:
    with tempfile.TemporaryDirectory(prefix="chatd-prop-") as tmp:
        store = make_store(backend, Path(tmp), RING, visible_window=window, durable=False, dsn=dsn)
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
    # The chain links the appends returned: each event's prev_hash is the hash before it.
    assert all(log[i].prev_hash == log[i - 1].hash for i in range(1, len(log)))

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

    # Reads: every user's every read path is exactly what the reference rule allows.
    await check_reads(store, users, conv, log, page_limit)

    # Retrying every successful operation now appends nothing and repeats its seqs.
    for i, outcome in outcomes.items():
        if isinstance(outcome, AppendResult):
            again = await store.apply(ops[i])
            assert again.duplicate is True
            assert (again.first_seq, again.last_seq) == (outcome.first_seq, outcome.last_seq)
    report = await store.verify()
    assert report.ok and report.events == last


async def check_reads(
    store: Store, users: list[int], conv: int, log: list[Event], page_limit: int
) -> None:
    """Every read path of the store, for every user, against :mod:`chatd.core.visibility`."""
    last = log[-1].seq
    window_size = store.window_size
    intervals = visibility.intervals_from_log(log)
    members_now = {u for u, ivs in intervals.items() if visibility.is_member(ivs)}
    assert await store.current_members(conv) == members_now
    assert await store.audience(conv, 1, last) == {
        seq: visibility.audience(intervals, seq) for seq in range(1, last + 1)
    }
    positions = [(conv, seq) for seq in range(0, last + 2)]
    for user in users:
        mine = intervals.get(user, ())
        assert await store.intervals(user, conv) == mine
        assert await store.chain_views(user, positions) == [
            visibility.chain_view(conv, log, mine, seq) for _, seq in positions
        ], user
        if not mine:
            with pytest.raises(ConversationNotFound):
                await store.visible_window(user, conv)
            with pytest.raises(ConversationNotFound):
                visibility.window_page(conv, log, mine, window_size)
            assert await store.inbox(user) == []
            continue
        seen = visibility.visible_events(log, mine)
        window = await store.visible_window(user, conv)
        assert window == visibility.window_page(conv, log, mine, window_size), user
        assert window.has_more is False
        for after in range(0, last + 2):
            page = await store.events_after(user, conv, after, page_limit)
            assert page == visibility.page_after(conv, log, mine, window_size, after, page_limit), (
                user,
                after,
            )
        for before in range(1, last + 2):
            page = await store.events_before(user, conv, before, page_limit)
            assert page == visibility.page_before(
                conv, log, mine, window_size, before, page_limit
            ), (user, before)
        top = visibility.top(mine, last)
        assert top == seen[-1].seq
        heads = await store.conversation_heads(user)
        assert [(h.conv_id, h.last_visible_seq) for h in heads] == [(conv, top)]
        assert heads[0].last_event == seen[-1]
        assert heads[0].is_member == (user in members_now)
        await check_read_markers(store, user, conv, log, mine, top)


async def check_read_markers(
    store: Store, user: int, conv: int, log: list[Event], mine: tuple[Interval, ...], top: int
) -> None:
    """The inbox row and the read markers (forward only, within what the user may see), with
    unread counts capped at the window."""
    window_size = store.window_size
    intervals = visibility.intervals_from_log(log)
    marker = 0
    for asked in (None, top // 2, 1, top + 5, -1):
        if asked is not None:
            state = await store.mark_read(user, conv, asked)
            marker = visibility.read_marker(marker, asked, top)
            unread = visibility.unread(log, mine, user, marker, window_size)
            assert state == ReadState(conv, marker, unread), (user, asked)
        [row] = await store.inbox(user)
        assert (row.conv_id, row.is_member, row.last_seq, row.read_seq) == (
            conv,
            visibility.is_member(mine),
            top,
            marker,
        )
        assert row.members == tuple(sorted(visibility.members_after(intervals, top)))
        assert row.unread == visibility.unread(log, mine, user, marker, window_size)
        assert row.last_event == log[top - 1]


def test_the_window_reads_the_reference_number_of_extra_events() -> None:
    from chatd.store.postgres import log as postgres_log
    from chatd.store.sqlite import log

    assert log.WINDOW_EXTRA_EVENTS is visibility.WINDOW_EXTRA_EVENTS
    assert postgres_log.WINDOW_EXTRA_EVENTS is visibility.WINDOW_EXTRA_EVENTS


@pytest.mark.parametrize("backend", BACKENDS)
def test_random_interleavings_match_the_reference(
    backend: str, example_databases: DatabaseFor
) -> None:
    # The hypothesis test is built here, so that its number of examples can depend on the
    # backend, and each example takes its database from the fixture.
    @settings(
        max_examples=EXAMPLES[backend],
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(
        steps=steps_strategy,
        window=st.sampled_from([1, 2, 5]),
        page_limit=st.integers(1, 4),
        creator_members=st.integers(1, USERS - 1),
    )
    def interleavings(
        steps: list[Step], window: int, page_limit: int, creator_members: int
    ) -> None:
        with example_databases() as dsn:
            asyncio.run(scenario(backend, dsn, steps, window, page_limit, creator_members))

    interleavings()
