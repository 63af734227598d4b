"""Contract: the administrators' audit log (every backend).

Records are appended at the end, numbered densely, chained by hash, listed exactly as they
were appended; an administrator's change and its record commit together (a failed change
records nothing); ``verify`` walks the chain.  A hypothesis property checks any sequence of
actions, and that raw SQL can neither change nor remove a record (SQLite's triggers, or
PostgreSQL's: a database of its own per example, from ``fresh_databases``).
"""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3
import tempfile
from contextlib import closing
from pathlib import Path

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chatd.attachments.blobstore import BlobStore
from chatd.core.audit import (
    ACTIONS,
    ActionKind,
    Actor,
    AdminAction,
    AuditEntry,
    AuditQuery,
)
from chatd.core.errors import ConversationNotFound, LoginTakenError, UserNotFound
from chatd.core.records import NewUser, SessionToken, UserProfile
from chatd.crypto.chain import GENESIS, audit_link_hash
from chatd.crypto.keyring import KeyRing
from chatd.store.contract import Store
from tests.conftest import FAKE_PASSWORD_HASH, create_conv, make_user, make_users
from tests.store.conftest import BACKENDS, FreshDatabases, StoreFactory, make_store
from tests.store.test_contract_attachments import send, upload

ALICE = Actor.os_user("alice")
RING = KeyRing.generate()


def action(kind: ActionKind, target: str = "7", actor: Actor = ALICE) -> AdminAction:
    return AdminAction(actor, kind, target, dict.fromkeys(ACTIONS[kind].counts, 1))


async def everything(store: Store, query: AuditQuery | None = None) -> list[AuditEntry]:
    query = query or AuditQuery()
    entries: list[AuditEntry] = []
    while page := await store.admin_actions(query):
        entries.extend(page)
        query = AuditQuery(query.since_ms, query.until_ms, query.kinds, page[-1].seq, query.limit)
    return entries


def check_chain(entries: list[AuditEntry]) -> None:
    """Dense seqs, each record linked to the one before (the MAC itself needs the log's key:
    ``verify`` checks it)."""
    prev = GENESIS
    for seq, entry in enumerate(entries, 1):
        assert (entry.seq, entry.prev_hash) == (seq, prev)
        assert len(entry.hash) == 32 and entry.hash != audit_link_hash(
            bytes(32), prev, seq, entry.at_ms, entry.action
        )
        prev = entry.hash


async def test_an_empty_log_lists_nothing_and_verifies(store: Store) -> None:
    assert await store.admin_actions(AuditQuery()) == []
    report = await store.verify()
    assert report.ok and report.admin_actions == 0


async def test_appended_records_are_listed_in_order_and_chained(
    store_factory: StoreFactory,
) -> None:
    store = await store_factory.open(clock_ms=lambda: 1_000)
    appended = [
        await store.append_admin_action(action(ActionKind.KEY_RETIRED, "k1")),
        await store.append_admin_action(action(ActionKind.USER_DISABLED, "3")),
        await store.append_admin_action(action(ActionKind.KEY_ROTATED, "k2")),
    ]
    assert [e.seq for e in appended] == [1, 2, 3]
    assert all(e.at_ms == 1_000 for e in appended)
    assert await everything(store) == appended
    check_chain(appended)
    await store.close()
    store = await store_factory.open()  # durable: the same after reopening
    assert await everything(store) == appended
    report = await store.verify()
    assert report.ok and report.admin_actions == 3


async def test_an_incomplete_record_is_refused_and_nothing_is_appended(store: Store) -> None:
    with pytest.raises(ValueError):
        await store.append_admin_action(AdminAction(ALICE, ActionKind.KEY_RETIRED))
    with pytest.raises(ValueError):
        await store.append_admin_action(AdminAction(ALICE, ActionKind.KEY_ROTATED, "k"))
    assert await store.admin_actions(AuditQuery()) == []


async def test_account_changes_are_recorded_with_their_target_and_counts(store: Store) -> None:
    user = await store.create_user(
        NewUser("c.dupont", FAKE_PASSWORD_HASH, UserProfile("Claire", "Dupont")),
        audit=AdminAction(ALICE, ActionKind.USER_CREATED),
    )
    await store.set_user_disabled(user.id, True, audit=AdminAction(ALICE, ActionKind.USER_DISABLED))
    await store.set_user_disabled(user.id, False, audit=AdminAction(ALICE, ActionKind.USER_ENABLED))
    for name in ("phone", "laptop"):
        digest = hashlib.sha256(name.encode()).digest()
        await store.create_session_token(SessionToken(digest, user.id, 0, 3_600_000))
    closed = await store.reset_password(
        user.id, FAKE_PASSWORD_HASH, now_ms=5, audit=AdminAction(ALICE, ActionKind.PASSWORD_RESET)
    )
    assert closed == 2
    entries = await everything(store)
    assert [(e.action.kind, e.action.target, dict(e.action.counts)) for e in entries] == [
        (ActionKind.USER_CREATED, str(user.id), {}),
        (ActionKind.USER_DISABLED, str(user.id), {}),
        (ActionKind.USER_ENABLED, str(user.id), {}),
        (ActionKind.PASSWORD_RESET, str(user.id), {"sessions_closed": 2}),
    ]
    assert {e.action.actor for e in entries} == {ALICE}
    check_chain(entries)


async def test_key_epoch_and_shredding_changes_are_recorded(
    store_factory: StoreFactory, ring: KeyRing, tmp_path: Path
) -> None:
    store = await store_factory.open()
    a, b = await make_users(store, "alice", "bob")
    doomed = (await create_conv(store, a, [b])).conv_id
    sent = await upload(store, BlobStore(tmp_path / "attachments"), a)
    await send(store, doomed, a, sent.id)
    rotated = ring.with_new_active()
    rewrapped = await store.rewrap_data_keys(
        rotated, audit=AdminAction(ALICE, ActionKind.KEY_ROTATED)
    )
    shredded = AdminAction(ALICE, ActionKind.CONVERSATION_SHREDDED)
    assert await store.shred_conversation(doomed, audit=shredded) == [sent.id]
    await store.shred_conversation(doomed, audit=shredded)  # again: nothing shredded, no record
    epoch = await store.declare_new_epoch(audit=AdminAction(ALICE, ActionKind.EPOCH_DECLARED))
    entries = await everything(store)
    assert [(e.action.kind, e.action.target, dict(e.action.counts)) for e in entries] == [
        (ActionKind.KEY_ROTATED, rotated.active_id, {"data_keys": rewrapped}),
        (ActionKind.CONVERSATION_SHREDDED, str(doomed), {"attachments": 1}),
        (ActionKind.EPOCH_DECLARED, epoch, {}),
    ]
    check_chain(entries)


async def test_a_failed_change_records_nothing(store: Store) -> None:
    user = await make_user(store, "c.dupont")
    with pytest.raises(LoginTakenError):
        await store.create_user(
            NewUser("C.Dupont", FAKE_PASSWORD_HASH, UserProfile("C", "D")),
            audit=AdminAction(ALICE, ActionKind.USER_CREATED),
        )
    with pytest.raises(UserNotFound):
        await store.set_user_disabled(999, True, audit=AdminAction(ALICE, ActionKind.USER_DISABLED))
    with pytest.raises(UserNotFound):
        await store.reset_password(
            999, FAKE_PASSWORD_HASH, now_ms=1, audit=AdminAction(ALICE, ActionKind.PASSWORD_RESET)
        )
    with pytest.raises(ConversationNotFound):
        await store.shred_conversation(
            987654, audit=AdminAction(ALICE, ActionKind.CONVERSATION_SHREDDED)
        )
    assert await store.admin_actions(AuditQuery()) == []
    assert not (await store.get_user(user.id)).disabled


async def test_listing_filters_by_time_and_kind_and_pages(store_factory: StoreFactory) -> None:
    now = {"ms": 100}
    store = await store_factory.open(clock_ms=lambda: now["ms"])
    kinds = [ActionKind.KEY_RETIRED, ActionKind.USER_DISABLED] * 5
    for i, kind in enumerate(kinds):
        now["ms"] = 100 + 10 * i  # 100, 110, … 190
        await store.append_admin_action(action(kind, str(i)))
    every = await everything(store)
    cases = [
        AuditQuery(since_ms=120),
        AuditQuery(until_ms=150),
        AuditQuery(since_ms=120, until_ms=150, kinds=frozenset({ActionKind.USER_DISABLED})),
        AuditQuery(kinds=frozenset({ActionKind.KEY_RETIRED}), after_seq=4),
        AuditQuery(kinds=frozenset({ActionKind.KEY_RETIRED, ActionKind.USER_DISABLED})),
        AuditQuery(since_ms=1000),
    ]
    for query in cases:
        assert await everything(store, query) == [e for e in every if query.matches(e)], query
    first_page = await store.admin_actions(AuditQuery(limit=3))
    assert first_page == every[:3]
    assert [e.seq for e in await everything(store, AuditQuery(limit=3))] == list(range(1, 11))


async def test_concurrent_records_get_dense_seqs_and_one_chain(store: Store) -> None:
    (user,) = await make_users(store, "alice")
    results = await asyncio.gather(
        *(store.append_admin_action(action(ActionKind.KEY_RETIRED, f"k{i}")) for i in range(8)),
        *(
            store.set_user_disabled(
                user, i % 2 == 0, audit=AdminAction(ALICE, ActionKind.USER_ENABLED)
            )
            for i in range(4)
        ),
    )
    entries = await everything(store)
    assert len(entries) == 12
    check_chain(entries)
    appended = [r for r in results if isinstance(r, AuditEntry)]
    assert sorted(appended, key=lambda e: e.seq) == [
        e for e in entries if e.action.kind is ActionKind.KEY_RETIRED
    ]
    assert (await store.verify()).ok


async def test_two_nodes_appending_at_once_make_one_chain(store_factory: StoreFactory) -> None:
    """Two stores on one database (two nodes) append at the same instants, records of their
    own and records of account changes: one chain, dense seqs, each record once."""
    nodes = [await store_factory.open(), await store_factory.open()]
    users = await make_users(nodes[0], "alice", "bob")
    results = await asyncio.gather(
        *(
            nodes[i % 2].append_admin_action(action(ActionKind.KEY_RETIRED, f"k{i}"))
            for i in range(10)
        ),
        *(
            nodes[i % 2].set_user_disabled(
                users[i % 2], True, audit=AdminAction(ALICE, ActionKind.USER_DISABLED)
            )
            for i in range(4)
        ),
    )
    for node in nodes:
        entries = await everything(node)
        assert len(entries) == 14
        check_chain(entries)
    appended = [r for r in results if isinstance(r, AuditEntry)]
    assert sorted(appended, key=lambda e: e.seq) == [
        e for e in entries if e.action.kind is ActionKind.KEY_RETIRED
    ]


# ----------------------------------------------------------------------------- property


actors = st.builds(
    Actor.os_user,
    st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=12),
)


@st.composite
def any_action(draw: st.DrawFn) -> AdminAction:
    kind = draw(st.sampled_from(list(ActionKind)))
    counts = {name: draw(st.integers(0, 10**9)) for name in ACTIONS[kind].counts}
    target = draw(st.text("0123456789abcdef", min_size=1, max_size=32))
    return AdminAction(draw(actors), kind, target, counts)


RAW_CHANGES = [
    "UPDATE admin_audit SET actor = 'mallory' WHERE seq = ?",
    "UPDATE admin_audit SET target = '1' WHERE seq = ?",
    "UPDATE admin_audit SET counts = '{}' WHERE seq = ?",
    "UPDATE admin_audit SET at = at + 1 WHERE seq = ?",
    "UPDATE admin_audit SET hash = prev_hash WHERE seq = ?",
    "DELETE FROM admin_audit WHERE seq = ?",
    "DELETE FROM admin_audit WHERE seq >= ?",
    # an insertion anywhere but after the last record, or linked to another one
    "INSERT INTO admin_audit SELECT seq, at, actor_kind, actor, action, target_kind, target,"
    " counts, prev_hash, hash FROM admin_audit WHERE seq = ?",
    "INSERT INTO admin_audit SELECT (SELECT MAX(seq) + 1 FROM admin_audit), at, actor_kind,"
    " actor, action, target_kind, target, counts, prev_hash, hash FROM admin_audit WHERE seq = ?",
]


async def property_scenario(
    backend: str, dsn: str | None, actions: list[AdminAction], change: int, row: int
) -> None:
    with tempfile.TemporaryDirectory(prefix="chatd-audit-prop-") as tmp:
        clock = iter(range(1_000, 10**9, 7))
        store = make_store(
            backend, Path(tmp), RING, durable=False, clock_ms=lambda: next(clock), dsn=dsn
        )
        async with store:
            appended = [await store.append_admin_action(a) for a in actions]
            listed = await everything(store)
            assert listed == appended
            assert [e.action for e in listed] == actions
            check_chain(listed)
            report = await store.verify()
            assert report.ok and report.admin_actions == len(actions), report.problems
        if not actions:
            return
        seq = row % len(actions) + 1
        if backend == "sqlite":
            raw = sqlite3.connect(Path(tmp) / "chatd.sqlite3", isolation_level=None)
            with closing(raw) as conn, pytest.raises(sqlite3.IntegrityError, match="admin audit"):
                conn.execute(RAW_CHANGES[change], (seq,))
        else:
            assert dsn is not None
            await raw_change_is_refused(dsn, RAW_CHANGES[change].replace("?", "$1"), seq)
        again = make_store(backend, Path(tmp), RING, durable=False, clock_ms=None, dsn=dsn)
        async with again:
            assert await everything(again) == appended


async def raw_change_is_refused(dsn: str, sql: str, seq: int) -> None:
    """The database's own rules refuse ``sql`` (a connection of the owner: no store code)."""
    conn = await asyncpg.connect(dsn)
    try:
        with pytest.raises(asyncpg.IntegrityConstraintViolationError, match="admin audit"):
            await conn.execute(sql, seq)
    finally:
        await conn.close()


@pytest.mark.parametrize("backend", BACKENDS)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    actions=st.lists(any_action(), max_size=12),
    change=st.integers(0, len(RAW_CHANGES) - 1),
    row=st.integers(0, 100),
)
def test_any_sequence_of_actions_is_listed_as_appended_chained_and_unchangeable(
    fresh_databases: FreshDatabases,
    backend: str,
    actions: list[AdminAction],
    change: int,
    row: int,
) -> None:
    with fresh_databases(backend) as dsn:
        asyncio.run(property_scenario(backend, dsn, actions, change, row))
