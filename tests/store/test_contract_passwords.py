"""Contract: changing and resetting a password (every backend).

A change by the user and a reset by an administrator each replace the hash, set or clear the
must-change flag and revoke tokens in one transaction; a change is a compare-and-set on the
hash its old password was checked against.
"""

from __future__ import annotations

import asyncio
import hashlib

import pytest

from chatd.core.errors import (
    ConflictError,
    InvalidCredentialsError,
    UserDisabledError,
    UserNotFound,
)
from chatd.core.records import SessionToken
from chatd.store.contract import Store
from tests.conftest import FAKE_PASSWORD_HASH, make_user, make_users
from tests.store.conftest import StoreFactory

HOUR = 3_600_000
NEW_HASH = "$argon2id$v=19$m=19456,t=2,p=1$bmV3c2FsdA$bmV3aGFzaA"
ONE_TIME_HASH = "$argon2id$v=19$m=19456,t=2,p=1$b3Rwc2FsdA$b3RwaGFzaA"


def digest(name: str) -> bytes:
    return hashlib.sha256(name.encode()).digest()


async def tokens(store: Store, user: int, *names: str) -> None:
    for name in names:
        await store.create_session_token(SessionToken(digest(name), user, 0, 8 * HOUR))


async def revoked_at(store: Store, name: str) -> int | None:
    token = await store.find_session_token(digest(name))
    assert token is not None
    return token.revoked_at


async def test_a_new_user_need_not_change_their_password(store: Store) -> None:
    user = await make_user(store, "alice")
    assert user.must_change_password is False
    assert (await store.find_user_by_login("alice")) == user


async def test_reset_sets_the_hash_and_the_flag_and_revokes_every_token(store: Store) -> None:
    a, b = await make_users(store, "alice", "bob")
    await tokens(store, a, "a1", "a2", "a3")
    await tokens(store, b, "b1")
    await store.revoke_session_token(digest("a3"), 5)
    assert await store.reset_password(a, ONE_TIME_HASH, now_ms=100) == 2
    user = await store.get_user(a)
    assert (user.password_hash, user.must_change_password) == (ONE_TIME_HASH, True)
    assert [await revoked_at(store, n) for n in ("a1", "a2", "a3")] == [100, 100, 5]
    assert await revoked_at(store, "b1") is None  # only that user
    other = await store.get_user(b)
    assert (other.password_hash, other.must_change_password) == (FAKE_PASSWORD_HASH, False)
    assert await store.invalid_session_tokens([digest("a1"), digest("b1")], 200) == {digest("a1")}


async def test_a_change_clears_the_flag_and_revokes_only_the_other_tokens(store: Store) -> None:
    a, b = await make_users(store, "alice", "bob")
    await store.reset_password(a, ONE_TIME_HASH, now_ms=100)
    await tokens(store, a, "mine", "phone", "tablet", "old")
    await tokens(store, b, "bob")
    await store.revoke_session_token(digest("old"), 150)
    revoked = await store.change_password(
        a, NEW_HASH, expected_hash=ONE_TIME_HASH, keep_token=digest("mine"), now_ms=200
    )
    assert sorted(revoked) == sorted([digest("phone"), digest("tablet")])
    user = await store.get_user(a)
    assert (user.password_hash, user.must_change_password) == (NEW_HASH, False)
    assert await revoked_at(store, "mine") is None  # the session that changed it stays
    assert [await revoked_at(store, n) for n in ("phone", "tablet", "old")] == [200, 200, 150]
    assert await revoked_at(store, "bob") is None


async def test_a_change_with_no_other_session_revokes_nothing(store: Store) -> None:
    (a,) = await make_users(store, "alice")
    await tokens(store, a, "mine")
    revoked = await store.change_password(
        a, NEW_HASH, expected_hash=FAKE_PASSWORD_HASH, keep_token=digest("mine"), now_ms=10
    )
    assert revoked == []
    assert (await store.get_user(a)).password_hash == NEW_HASH


async def test_a_change_against_a_stale_hash_changes_nothing(store: Store) -> None:
    """The old password was checked against a hash an admin reset replaced meanwhile."""
    (a,) = await make_users(store, "alice")
    await tokens(store, a, "mine", "phone")
    await store.reset_password(a, ONE_TIME_HASH, now_ms=100)
    await tokens(store, a, "after")
    with pytest.raises(ConflictError):
        await store.change_password(
            a, NEW_HASH, expected_hash=FAKE_PASSWORD_HASH, keep_token=digest("mine"), now_ms=200
        )
    user = await store.get_user(a)
    assert (user.password_hash, user.must_change_password) == (ONE_TIME_HASH, True)
    assert await revoked_at(store, "after") is None  # nothing of the refused change happened


async def test_unknown_users_are_refused(store: Store) -> None:
    with pytest.raises(UserNotFound):
        await store.reset_password(999, ONE_TIME_HASH, now_ms=1)
    with pytest.raises(UserNotFound):
        await store.change_password(
            999, NEW_HASH, expected_hash=FAKE_PASSWORD_HASH, keep_token=digest("x"), now_ms=1
        )


async def test_concurrent_changes_from_one_old_password_apply_once(store: Store) -> None:
    (a,) = await make_users(store, "alice")
    await tokens(store, a, "s1", "s2")
    results = await asyncio.gather(
        *(
            store.change_password(
                a,
                f"{NEW_HASH}{i}",
                expected_hash=FAKE_PASSWORD_HASH,
                keep_token=digest(s),
                now_ms=9,
            )
            for i, s in enumerate(("s1", "s2"))
        ),
        return_exceptions=True,
    )
    conflicts = [r for r in results if isinstance(r, ConflictError)]
    applied = [r for r in results if isinstance(r, list)]
    assert len(conflicts) == 1 and len(applied) == 1
    winner = 0 if isinstance(results[0], list) else 1
    assert (await store.get_user(a)).password_hash == f"{NEW_HASH}{winner}"
    # The loser's session is the one the winner revoked.
    assert applied[0] == [digest(("s2", "s1")[winner])]


async def test_the_flag_and_hash_survive_a_reopen(store_factory: StoreFactory) -> None:
    store = await store_factory.open()
    (a,) = await make_users(store, "alice")
    await store.reset_password(a, ONE_TIME_HASH, now_ms=1)
    await store.close()
    again = await store_factory.open()
    user = await again.get_user(a)
    assert (user.password_hash, user.must_change_password) == (ONE_TIME_HASH, True)
    assert [u.must_change_password for u in await again.list_users()] == [True]


async def test_a_login_whose_password_changed_during_its_check_records_no_token(
    store: Store,
) -> None:
    """A login checks the password against the hash it read (Argon2 takes a while); a reset
    that lands meanwhile revokes every token.  The login's token, recorded with the hash it
    checked, is refused rather than left live behind the revocation."""
    alice = await make_user(store, "alice")
    checked = alice.password_hash
    await store.reset_password(alice.id, ONE_TIME_HASH, now_ms=1)
    late = SessionToken(digest("late"), alice.id, 2, 8 * HOUR)
    with pytest.raises(InvalidCredentialsError):
        await store.create_session_token(late, password_hash=checked)
    assert await store.find_session_token(digest("late")) is None
    fresh = SessionToken(digest("fresh"), alice.id, 3, 8 * HOUR)
    await store.create_session_token(fresh, password_hash=ONE_TIME_HASH)  # the current hash
    assert await store.find_session_token(digest("fresh")) is not None


async def test_a_login_of_an_account_disabled_during_its_check_records_no_token(
    store: Store,
) -> None:
    bob = await make_user(store, "bob")
    await store.set_user_disabled(bob.id, True)
    with pytest.raises(UserDisabledError):
        await store.create_session_token(
            SessionToken(digest("b"), bob.id, 1, 8 * HOUR), password_hash=bob.password_hash
        )
    assert await store.find_session_token(digest("b")) is None
    with pytest.raises(InvalidCredentialsError):  # an account that does not exist
        await store.create_session_token(
            SessionToken(digest("x"), bob.id + 1000, 1, 8 * HOUR), password_hash=FAKE_PASSWORD_HASH
        )
