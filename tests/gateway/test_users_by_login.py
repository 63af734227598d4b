"""``users`` by login name: how a client turns the login a person typed into a user id."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest

from chatd.gateway import protocol as p
from tests.gateway.conftest import Admin


def decode(**fields: Any) -> p.Request:
    return p.decode_request(msgpack.packb(fields, use_bin_type=True))


def test_users_decodes_ids_logins_or_both() -> None:
    assert decode(op="users", rid=1, logins=["a.b"]) == p.Users(1, (), ("a.b",))
    assert decode(op="users", rid=1, ids=[3], logins=["a.b"]) == p.Users(1, (3,), ("a.b",))
    assert decode(op="users", rid=1, ids=[3]) == p.Users(1, (3,), ())


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({}, "ids"),
        ({"ids": [], "logins": []}, "ids"),
        ({"logins": [""]}, "logins"),
        ({"logins": ["x" * 65]}, "logins"),
        ({"logins": "a.b"}, "logins"),
        ({"logins": [1]}, "logins"),
        ({"ids": [1] * 100, "logins": ["a"] * 101}, "ids"),
    ],
)
def test_users_refuses_bad_lookups(fields: dict[str, Any], field: str) -> None:
    with pytest.raises(p.BadRequest) as info:
        decode(op="users", rid=1, **fields)
    assert info.value.error.code == "invalid_request"
    assert info.value.error.details["field"] == field


async def test_lookup_by_login_returns_the_login_only_to_who_typed_it(admin: Admin) -> None:
    alice, bob = await admin.users(2)
    a = await admin.connect(alice)
    await a.create([bob.id])  # by id, only the profiles of people one shares a conversation with
    found = await a.ok("users", logins=[f"  {bob.login.upper()} ", "nobody.here"], ids=[bob.id])
    by_id, by_login = found["users"]
    assert by_id["id"] == by_login["id"] == bob.id
    assert "login" not in by_id  # an id look-up never reveals a login
    assert by_login["login"] == bob.login  # case and spaces normalised, as at login
    assert found["unknown"] == []
    assert found["unknown_logins"] == ["nobody.here"]
