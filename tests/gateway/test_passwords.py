"""Changing a password over HTTP, and the gate after an administrator's reset — against a real
``chatd serve``, the reset made by the real ``chatd user reset-password`` in another process."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import httpx
import pytest

from chatd.crypto.passwords import verify_password
from chatd.gateway.protocol import CloseCode
from tests.conftest import run_chatd
from tests.gateway.client import WsClient, pack
from tests.gateway.conftest import PASSWORD, TERMS, Account, Admin, ServerProcess

NEW_PASSWORD = "Tension 14/9 ce matin, RAS"
LOGGED_OUT = (CloseCode.LOGGED_OUT, "logged_out")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def login(server: ServerProcess, name: str, password: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        return await http.post("/v1/auth/login", json={"login": name, "password": password})


async def change(
    server: ServerProcess,
    token: str,
    old: str,
    new: str,
    *,
    language: str | None = None,
    **extra: Any,
) -> httpx.Response:
    """``language``: the client's Accept-Language (none: the server's default, French)."""
    body = {"old_password": old, "new_password": new, **extra}
    headers = bearer(token) | ({"Accept-Language": language} if language else {})
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        return await http.post("/v1/auth/password", json=body, headers=headers)


async def refused_on_connect(admin: Admin, token: str) -> tuple[int | None, str | None]:
    client = await WsClient.open(admin.server.ws_url)
    await client.send_raw(pack({"op": "auth", "rid": 1, "token": token}))
    return await client.wait_closed()


async def test_a_change_ends_the_other_sessions_and_keeps_this_one(admin: Admin) -> None:
    account = await admin.user()
    answer = await login(admin.server, account.login, PASSWORD)
    assert answer.json()["password_change_required"] is False
    mine = answer.json()["token"]
    phone_token = await admin.token(account.id)
    laptop = await admin.connect(token=mine)
    phone = await admin.connect(token=phone_token)
    tablet = await admin.connect(account)  # a third token: the one the fixture minted

    response = await change(admin.server, mine, PASSWORD, NEW_PASSWORD)
    assert response.status_code == 200, response.text
    assert response.json() == {
        "changed": True,
        "sessions_revoked": 2,
        "password_change_required": False,
    }
    assert await phone.wait_closed() == LOGGED_OUT
    assert await tablet.wait_closed() == LOGGED_OUT
    assert await refused_on_connect(admin, phone_token) == LOGGED_OUT
    async with httpx.AsyncClient(base_url=admin.server.base_url) as http:
        stale = await http.post(
            "/v1/auth/terms", json={"version": TERMS}, headers=bearer(phone_token)
        )
    assert (stale.status_code, stale.json()["code"]) == (401, "logged_out")

    await laptop.ok("ping")  # the session that changed it lives on
    conv = await laptop.create([(await admin.user()).id])
    assert [c["conv"] for c in (await laptop.ok("list"))["conversations"]] == [conv]

    old = await login(admin.server, account.login, PASSWORD)
    assert (old.status_code, old.json()["code"]) == (401, "invalid_credentials")
    new = await login(admin.server, account.login, NEW_PASSWORD)
    assert new.status_code == 200 and new.json()["user"]["id"] == account.id
    stored = await admin.store.get_user(account.id)
    assert verify_password(NEW_PASSWORD, stored.password_hash)
    assert NEW_PASSWORD not in admin.server.log()


async def test_a_wrong_old_password_counts_in_the_login_throttle(admin: Admin) -> None:
    account = await admin.user()
    witness = await admin.connect(token=await admin.token(account.id))
    before = (await admin.store.get_user(account.id)).password_hash
    for _ in range(4):
        wrong = await change(admin.server, account.token, "not the password", NEW_PASSWORD)
        assert (wrong.status_code, wrong.json()) == (
            401,
            {"code": "invalid_credentials", "message": "Le mot de passe actuel est incorrect."},
        )
    assert (await login(admin.server, account.login, "still wrong")).status_code == 401
    # Five failures for this login within the minute: the right password is refused too,
    # whether it is tried by a login or by a change.
    throttled = await change(admin.server, account.token, PASSWORD, NEW_PASSWORD)
    assert (throttled.status_code, throttled.json()["code"]) == (429, "rate_limited")
    assert (await login(admin.server, account.login, PASSWORD)).status_code == 429
    assert (await admin.store.get_user(account.id)).password_hash == before
    await witness.ok("ping")  # nothing was revoked


@pytest.mark.parametrize(
    ("new", "sentence"),
    [
        ("short", "A password has at least 12 characters; this one has 5."),
        ("{login} for ever", "A password must not contain your login."),
        ("Aliceetmoi au travail", "A password must not contain your first or last name."),
        ("motdepasse123", "most common passwords"),
        ("azertyuiopqsdf", "keyboard or alphabet sequence"),
        ("aaaaabbbbbaaaaa", "at least 6 different characters; this one has 2."),
        (PASSWORD, "The new password must be different from the current one."),
    ],
)
async def test_a_weak_new_password_is_refused_with_the_sentence(
    admin: Admin, new: str, sentence: str
) -> None:
    account = await admin.user(first_name="Alice")
    witness = await admin.connect(token=await admin.token(account.id))
    before = (await admin.store.get_user(account.id)).password_hash
    new = new.format(login=account.login)
    response = await change(admin.server, account.token, PASSWORD, new, language="en")
    assert response.status_code == 400
    assert response.json()["code"] == "weak_password"
    assert sentence in response.json()["message"]
    in_french = await change(admin.server, account.token, PASSWORD, new)
    assert in_french.json()["code"] == "weak_password"
    assert in_french.json()["message"] not in (response.json()["message"], "")
    assert (await admin.store.get_user(account.id)).password_hash == before
    await witness.ok("ping")  # no session was revoked


async def test_the_refusal_is_in_french_unless_the_client_asks(admin: Admin) -> None:
    account = await admin.user()
    french = await change(admin.server, account.token, PASSWORD, "court")
    assert french.json() == {
        "code": "weak_password",
        "message": "Un mot de passe compte au moins 12 caractères\u00a0; celui-ci en compte 5.",
    }
    english = await change(admin.server, account.token, PASSWORD, "court", language="en-US")
    assert english.json()["message"] == "A password has at least 12 characters; this one has 5."


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"old_password": PASSWORD}, 400, "invalid_request"),
        ({"old_password": PASSWORD, "new_password": 12}, 400, "invalid_request"),
        ({"old_password": PASSWORD, "new_password": NEW_PASSWORD, "x": 1}, 400, "invalid_request"),
        ({"old_password": "", "new_password": NEW_PASSWORD}, 400, "invalid_request"),
    ],
)
async def test_malformed_change_requests(
    admin: Admin, body: dict[str, Any], status: int, code: str
) -> None:
    account = await admin.user()
    async with httpx.AsyncClient(base_url=admin.server.base_url) as http:
        response = await http.post("/v1/auth/password", json=body, headers=bearer(account.token))
        anonymous = await http.post(
            "/v1/auth/password", json={"old_password": PASSWORD, "new_password": NEW_PASSWORD}
        )
    assert (response.status_code, response.json()["code"]) == (status, code)
    assert (anonymous.status_code, anonymous.json()["code"]) == (401, "unauthenticated")


async def test_a_password_that_is_not_unicode_is_a_bad_request(admin: Admin) -> None:
    account = await admin.user()
    body = b'{"old_password": "\\ud800", "new_password": "Tension 14/9 ce matin"}'
    async with httpx.AsyncClient(base_url=admin.server.base_url) as http:
        response = await http.post("/v1/auth/password", content=body, headers=bearer(account.token))
    assert (response.status_code, response.json()["code"]) == (400, "invalid_request")


def reset(server: ServerProcess, login_name: str) -> dict[str, Any]:
    """``chatd user reset-password`` in its own process, on the running server's database."""
    result = run_chatd(server.data_dir, "user", "reset-password", login_name, "--json")
    assert result.returncode == 0, result.stderr
    answer: dict[str, Any] = json.loads(result.stdout)
    return answer


GATED_OPS: list[tuple[str, dict[str, Any]]] = [
    ("list", {}),
    ("sync", {"convs": []}),
    ("history", {"conv": 1}),
    ("users", {"ids": [1]}),
    ("accept_terms", {"version": TERMS}),
    ("create", {"client_msg_id": "gated", "members": [1], "name": "n"}),
]


async def assert_gated(admin: Admin, client: WsClient, token: str) -> None:
    for op, fields in GATED_OPS:
        assert await client.error(op, **fields) == "password_change_required", op
    await client.ok("ping")  # keepalive passes, like at the terms gate
    async with httpx.AsyncClient(base_url=admin.server.base_url) as http:
        terms = await http.post("/v1/auth/terms", json={"version": TERMS}, headers=bearer(token))
        upload = await http.post(
            "/v1/attachments", content=b"%PDF-1.4\n", headers=bearer(token) | {"X-File-Name": "a"}
        )
    for response in (terms, upload):
        assert response.status_code == 403
        assert response.json()["code"] == "password_change_required"


async def test_an_admin_reset_closes_sessions_and_gates_the_next_login(admin: Admin) -> None:
    account: Account = await admin.user()
    peer = await admin.user()
    phone = await admin.connect(account)

    answer = reset(admin.server, account.login.upper())
    one_time = answer["one_time_password"]
    assert answer["login"] == account.login and answer["sessions_revoked"] == 1
    assert len(one_time.replace("-", "")) >= 16
    # The server learns it from its revocation sweep (once a second), without any request.
    assert await phone.wait_closed(10) == LOGGED_OUT

    old = await login(admin.server, account.login, PASSWORD)
    assert (old.status_code, old.json()["code"]) == (401, "invalid_credentials")
    gated = await login(admin.server, account.login, one_time)
    assert gated.status_code == 200, gated.text
    assert gated.json()["password_change_required"] is True
    token = gated.json()["token"]
    client = await admin.connect(token=token, sync=False)
    await assert_gated(admin, client, token)

    weak = await change(admin.server, token, one_time, "azertyuiop123")
    assert weak.json()["code"] == "weak_password"
    await assert_gated(admin, client, token)  # still closed

    response = await change(admin.server, token, one_time, NEW_PASSWORD)
    assert response.json() == {
        "changed": True,
        "sessions_revoked": 0,
        "password_change_required": False,
    }
    # The very connection that was gated now works: the gate re-reads the session.
    await client.sync()
    conv = await client.create([peer.id])
    assert [c["conv"] for c in (await client.ok("list"))["conversations"]] == [conv]
    user = await admin.store.get_user(account.id)
    assert user.must_change_password is False
    again = await login(admin.server, account.login, NEW_PASSWORD)
    assert again.json()["password_change_required"] is False
    assert (await login(admin.server, account.login, one_time)).status_code == 401


async def test_logging_out_is_allowed_behind_the_gate(admin: Admin) -> None:
    account = await admin.user()
    one_time = reset(admin.server, account.login)["one_time_password"]
    token = (await login(admin.server, account.login, one_time)).json()["token"]
    async with httpx.AsyncClient(base_url=admin.server.base_url) as http:
        response = await http.post("/v1/auth/logout", headers=bearer(token))
    assert response.json() == {"revoked": True}
    stored = await admin.store.find_session_token(hashlib.sha256(token.encode()).digest())
    assert stored is not None and stored.revoked_at is not None
    assert (await admin.store.get_user(account.id)).must_change_password is True


def test_reset_of_an_unknown_login_fails(server: ServerProcess) -> None:
    result = run_chatd(server.data_dir, "user", "reset-password", "nobody-at-all")
    assert result.returncode == 1 and "nobody-at-all" in result.stderr
