"""Profiles by id only for fellow members, through a real server: ``users`` answers a stranger's
id exactly as an id that names nobody, and a login typed exactly as it is."""

from __future__ import annotations

from tests.gateway.client import cmid
from tests.gateway.conftest import Admin


async def test_users_by_id_shows_only_people_one_shares_or_shared_a_conversation_with(
    admin: Admin,
) -> None:
    alice, bob, carol, stranger, later = await admin.users(5)
    a = await admin.connect(alice)
    b = await admin.connect(bob)
    nobody = 10**9

    def ids(reply: dict[str, object]) -> list[int]:
        return [u["id"] for u in reply["users"]]  # type: ignore[attr-defined, index]

    # Before any conversation: oneself only; a stranger is an unknown id like a free one.
    found = await a.ok("users", ids=[alice.id, bob.id, stranger.id, nobody])
    assert ids(found) == [alice.id]
    assert found["unknown"] == [bob.id, stranger.id, nobody]

    conv = await a.create([bob.id], "Suivi")
    found = await a.ok("users", ids=[bob.id, carol.id, stranger.id])
    assert ids(found) == [bob.id] and found["unknown"] == [carol.id, stranger.id]

    # Bob adds Carol then leaves: Alice and Carol share it; Bob still shared it with both.
    await b.ok("add", conv=conv, user=carol.id, client_msg_id=cmid())
    await b.ok("leave", conv=conv, client_msg_id=cmid())
    assert ids(await a.ok("users", ids=[carol.id, bob.id])) == [carol.id, bob.id]
    assert ids(await b.ok("users", ids=[alice.id, carol.id])) == [alice.id, carol.id]
    # Added after Bob left: never at the same time, yet both were members of it.
    await a.ok("add", conv=conv, user=later.id, client_msg_id=cmid())
    assert ids(await b.ok("users", ids=[later.id])) == [later.id]

    # A stranger's id stays unknown, with the very same answer as an id of nobody.
    s = await admin.connect(stranger)
    strange = await s.ok("users", ids=[alice.id])
    free = await s.ok("users", ids=[nobody])
    assert strange["users"] == free["users"] == []
    assert strange["unknown"] == [alice.id] and free["unknown"] == [nobody]
    assert set(strange) == set(free)

    # By exact login, anyone: how one starts a conversation with someone new.
    by_login = await s.ok("users", logins=[alice.login])
    assert ids(by_login) == [alice.id] and by_login["users"][0]["login"] == alice.login
