"""Contract: user accounts (every backend)."""

from __future__ import annotations

import pytest

from chatd.core.errors import LoginTakenError, UserNotFound, ValidationError
from chatd.core.records import NewUser, UserProfile
from chatd.store.contract import Store
from tests.conftest import FAKE_PASSWORD_HASH, make_user


async def test_create_user_returns_the_stored_user(store: Store) -> None:
    profile = UserProfile(
        first_name="Élodie",
        last_name="Nguyễn",
        profession="Infirmière",
        structure="EHPAD Les Tilleuls",
        email="elodie@example.org",
        rpps="10101010101",
    )
    user = await store.create_user(NewUser("  Elodie.N ", FAKE_PASSWORD_HASH, profile))
    assert user.id >= 1
    assert user.login == "elodie.n"  # normalised: stripped, lower case
    assert user.password_hash == FAKE_PASSWORD_HASH
    assert user.profile == profile
    assert user.disabled is False
    assert user.terms_version is None
    assert user.created_at > 0
    assert await store.get_user(user.id) == user


async def test_user_ids_are_distinct_and_list_is_by_id(store: Store) -> None:
    created = [await make_user(store, login) for login in ("zoe", "adam", "marc")]
    assert len({u.id for u in created}) == 3
    listed = await store.list_users()
    assert [u.id for u in listed] == sorted(u.id for u in created)
    assert {u.login for u in listed} == {"zoe", "adam", "marc"}
    assert listed == sorted(created, key=lambda u: u.id)


@pytest.mark.parametrize("again", ["alice", "ALICE", "Alice", "  alice  "])
async def test_duplicate_login_is_refused_case_insensitively(store: Store, again: str) -> None:
    first = await make_user(store, "Alice")
    with pytest.raises(LoginTakenError):
        await make_user(store, again, first_name="Other")
    users = await store.list_users()
    assert users == [first]  # nothing recorded by the refused creation


@pytest.mark.parametrize("login", ["a", "", "has space", "x" * 65, "semi;colon", "tab\tlogin"])
async def test_invalid_login_is_refused(store: Store, login: str) -> None:
    with pytest.raises(ValidationError):
        await make_user(store, login)
    assert await store.list_users() == []


async def test_get_unknown_user_raises(store: Store) -> None:
    with pytest.raises(UserNotFound):
        await store.get_user(12345)


async def test_find_user_by_login_is_case_insensitive(store: Store) -> None:
    bob = await make_user(store, "bob.dupont")
    assert await store.find_user_by_login("bob.dupont") == bob
    assert await store.find_user_by_login("BOB.Dupont") == bob
    assert await store.find_user_by_login(" bob.dupont ") == bob
    assert await store.find_user_by_login("bob") is None


async def test_disable_and_enable_a_user(store: Store) -> None:
    user = await make_user(store, "carol")
    other = await make_user(store, "dave")
    disabled = await store.set_user_disabled(user.id, True)
    assert disabled.disabled is True
    assert (await store.get_user(user.id)).disabled is True
    assert (await store.get_user(other.id)).disabled is False  # only that user
    assert [u.id for u in await store.list_users()] == [user.id, other.id]  # never deleted
    enabled = await store.set_user_disabled(user.id, False)
    assert enabled.disabled is False
    assert enabled.profile == user.profile


async def test_disable_unknown_user_raises(store: Store) -> None:
    with pytest.raises(UserNotFound):
        await store.set_user_disabled(999, True)


async def test_terms_accepted_is_recorded(store: Store) -> None:
    user = await make_user(store, "erin")
    updated = await store.set_terms_accepted(user.id, "2026-01")
    assert updated.terms_version == "2026-01"
    assert (await store.get_user(user.id)).terms_version == "2026-01"
    again = await store.set_terms_accepted(user.id, "2027-03")
    assert again.terms_version == "2027-03"
    with pytest.raises(UserNotFound):
        await store.set_terms_accepted(999, "2026-01")


async def test_the_language_a_person_chose_is_kept_and_can_be_forgotten(store: Store) -> None:
    user = await make_user(store, "fanny")
    assert user.language is None  # not chosen: the client's, else the server's default
    assert (await store.set_user_language(user.id, "en")).language == "en"
    assert (await store.get_user(user.id)).language == "en"
    assert (await store.find_user_by_login("fanny")).language == "en"  # type: ignore[union-attr]
    assert (await store.set_user_language(user.id, None)).language is None
    chosen = await store.create_user(
        NewUser("gilles", FAKE_PASSWORD_HASH, UserProfile("Gilles", "Roux"), language="fr")
    )
    assert chosen.language == "fr"
    with pytest.raises(UserNotFound):
        await store.set_user_language(999, "fr")
