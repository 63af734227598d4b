"""Login, logout, token expiry, origin check and the terms gate — against a real server."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
import websockets

from chatd.gateway.protocol import CloseCode
from tests.conftest import run_chatd
from tests.gateway.client import WsClient, pack
from tests.gateway.conftest import ORIGIN, PASSWORD, TERMS, TERMS_URL, Admin, ServerProcess


async def login(server: ServerProcess, login: str, password: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        return await http.post("/v1/auth/login", json={"login": login, "password": password})


async def test_healthz_and_terms_version(server: ServerProcess) -> None:
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        health = await http.get("/healthz")
        terms = await http.get("/v1/auth/terms")
    assert health.status_code == 200 and health.json()["status"] == "ok"
    said = health.json()
    assert (said["store"], said["broker"], said["checkpoints"]) == ("ok", "local", "ok")
    assert isinstance(said["node"], str) and said["node"]
    assert terms.json() == {"terms_version": TERMS, "terms_url": TERMS_URL}


async def test_login_returns_a_token_that_opens_a_session(admin: Admin) -> None:
    account = await admin.user()
    response = await login(admin.server, account.login.upper(), PASSWORD)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["user"]["id"] == account.id and body["terms_accepted"] is True
    assert body["terms_url"] == TERMS_URL
    now = time.time() * 1000
    assert 7.9 * 3600e3 < body["expires_at"] - now <= 8 * 3600e3 + 5000  # 8 hours
    stored = await admin.store.find_session_token(
        __import__("hashlib").sha256(body["token"].encode()).digest()
    )
    assert stored is not None and stored.user_id == account.id  # kept only as its digest

    client = await admin.connect(token=body["token"])
    hello = client.hello
    assert hello is not None
    assert hello["protocol"] == 1 and hello["user"]["id"] == account.id
    assert hello["terms_url"] == TERMS_URL
    assert abs(hello["server_time"] - time.time() * 1000) < 60_000
    assert hello["limits"]["max_frame_bytes"] == 65536
    assert hello["limits"]["window"] == 200
    assert hello["limits"]["max_attachment_bytes"] == 10 * 1024 * 1024
    assert hello["session_expires_at"] == body["expires_at"]
    assert (await client.ok("ping"))["server_time"] > 0


async def test_wrong_password_and_unknown_login_fail_the_same_way(admin: Admin) -> None:
    account = await admin.user()
    wrong = await login(admin.server, account.login, "not the password")
    unknown = await login(admin.server, "nobody-" + account.login, PASSWORD)
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()
    assert wrong.json()["code"] == "invalid_credentials"


async def test_repeated_failures_are_throttled(admin: Admin) -> None:
    account = await admin.user()
    codes = [(await login(admin.server, account.login, "bad")).status_code for _ in range(6)]
    assert codes == [401] * 5 + [429]
    assert (await login(admin.server, account.login, PASSWORD)).status_code == 429


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"not json", 400, "malformed_frame"),
        (b'["login"]', 400, "malformed_frame"),
        (b'{"login": 5, "password": "x"}', 400, "invalid_request"),
        (b'{"login": "a", "password": "x", "extra": 1}', 400, "invalid_request"),
        (b'{"login": "a", "password": "\\ud800"}', 400, "invalid_request"),  # lone surrogate
        (b'{"login": "\\udfff", "password": "x"}', 400, "invalid_request"),
        (b'{"login": "a", "password": "' + b"x" * 5000 + b'"}', 413, "frame_too_large"),
    ],
)
async def test_malformed_login_bodies(
    server: ServerProcess, body: bytes, status: int, code: str
) -> None:
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        response = await http.post("/v1/auth/login", content=body)
    assert (response.status_code, response.json()["code"]) == (status, code)


async def test_disabled_account_cannot_log_in_or_connect(admin: Admin) -> None:
    account = await admin.user()
    await admin.store.set_user_disabled(account.id, True)
    response = await login(admin.server, account.login, PASSWORD)
    assert (response.status_code, response.json()["code"]) == (403, "user_disabled")
    client = await WsClient.open(admin.server.ws_url)
    await client.send_raw(pack({"op": "auth", "rid": 1, "token": account.token}))
    assert await client.wait_closed() == (CloseCode.USER_DISABLED, "user_disabled")


async def test_disabling_closes_live_sessions_at_their_next_request(admin: Admin) -> None:
    account = await admin.user()
    client = await admin.connect(account)
    await admin.store.set_user_disabled(account.id, True)

    async def ping_until_closed() -> None:
        while client.close_code is None:
            try:
                await client.request("ping")
            except (ConnectionError, websockets.ConnectionClosed):
                return
            await asyncio.sleep(0.1)  # the account is re-read at most once a second

    await asyncio.wait_for(ping_until_closed(), 5)
    assert await client.wait_closed() == (CloseCode.USER_DISABLED, "user_disabled")


@pytest.mark.parametrize(
    ("first_frame", "code"),
    [
        (pack({"op": "auth", "rid": 1, "token": "no-such-token"}), CloseCode.UNAUTHENTICATED),
        (pack({"op": "ping", "rid": 1}), CloseCode.UNAUTHENTICATED),
        (b"\xc1garbage", CloseCode.UNAUTHENTICATED),
        (pack({"op": "auth", "rid": 1, "token": 12}), CloseCode.UNAUTHENTICATED),
        ("text frame", CloseCode.UNSUPPORTED_DATA),
    ],
)
async def test_a_bad_first_frame_closes_the_connection(
    server: ServerProcess, first_frame: bytes | str, code: CloseCode
) -> None:
    client = await WsClient.open(server.ws_url)
    await client.send_raw(first_frame)
    assert await client.wait_closed() == (code, code.reason)
    assert client.pushes == [] and client.unmatched == []


async def test_no_auth_within_the_deadline_closes_with_4000(server: ServerProcess) -> None:
    client = await WsClient.open(server.ws_url)  # the test server allows 1 s
    assert await client.wait_closed(5) == (CloseCode.AUTH_TIMEOUT, "auth_timeout")


async def test_expired_token_is_refused(admin: Admin) -> None:
    account = await admin.user()
    token = await admin.token(account.id, expires_in_ms=-1)
    client = await WsClient.open(admin.server.ws_url)
    await client.send_raw(pack({"op": "auth", "rid": 1, "token": token}))
    assert await client.wait_closed() == (CloseCode.TOKEN_EXPIRED, "token_expired")
    async with httpx.AsyncClient(base_url=admin.server.base_url) as http:
        response = await http.post(
            "/v1/auth/terms", json={"version": TERMS}, headers={"Authorization": f"Bearer {token}"}
        )
    assert (response.status_code, response.json()["code"]) == (401, "token_expired")


async def test_a_session_closes_when_its_token_expires(admin: Admin) -> None:
    account = await admin.user()
    token = await admin.token(account.id, expires_in_ms=1500)
    client = await admin.connect(token=token)
    assert client.hello is not None
    assert await client.wait_closed(6) == (CloseCode.TOKEN_EXPIRED, "token_expired")


async def test_logout_closes_that_tokens_sockets_within_a_second(admin: Admin) -> None:
    account = await admin.user()
    other_token = await admin.token(account.id)
    phone = await admin.connect(account)
    tablet = await admin.connect(account)
    laptop = await admin.connect(token=other_token)  # another login of the same user
    started = time.monotonic()
    async with httpx.AsyncClient(base_url=admin.server.base_url) as http:
        response = await http.post(
            "/v1/auth/logout", headers={"Authorization": f"Bearer {account.token}"}
        )
        assert response.json() == {"revoked": True}
        assert await phone.wait_closed(1) == (CloseCode.LOGGED_OUT, "logged_out")
        assert await tablet.wait_closed(1) == (CloseCode.LOGGED_OUT, "logged_out")
        assert time.monotonic() - started < 1.5
        await laptop.ok("ping")  # the other token lives on
        again = await http.post(
            "/v1/auth/logout", headers={"Authorization": f"Bearer {account.token}"}
        )
        assert (again.status_code, again.json()["code"]) == (401, "logged_out")
        missing = await http.post("/v1/auth/logout")
        assert (missing.status_code, missing.json()["code"]) == (401, "unauthenticated")
    client = await WsClient.open(admin.server.ws_url)
    await client.send_raw(pack({"op": "auth", "rid": 1, "token": account.token}))
    assert await client.wait_closed() == (CloseCode.LOGGED_OUT, "logged_out")


async def test_origin_is_checked_against_the_allow_list(admin: Admin) -> None:
    account = await admin.user()
    with pytest.raises(websockets.InvalidStatus) as refused:
        await WsClient.open(admin.server.ws_url, account.token, origin="https://evil.example")
    assert refused.value.response.status_code == 403
    allowed = await admin.connect(account, origin=ORIGIN)
    await allowed.ok("ping")
    no_origin = await admin.connect(account)  # like the CLI
    await no_origin.ok("ping")


async def test_terms_gate_blocks_every_operation_until_accepted(admin: Admin) -> None:
    account = await admin.user(terms=False)
    peer = await admin.user()
    client = await admin.connect(account)
    assert client.hello is not None
    assert (client.hello["terms_accepted"], client.hello["terms_version"]) == (False, TERMS)
    for op, fields in [
        ("list", {}),
        ("sync", {"convs": []}),
        ("create", {"client_msg_id": "x", "members": [peer.id], "name": "n"}),
        ("history", {"conv": 1}),
        ("users", {"ids": [peer.id]}),
    ]:
        assert await client.error(op, **fields) == "terms_not_accepted"
    await client.ok("ping")  # allowed: keepalive
    assert await client.error("accept_terms", version="old") == "terms_version_mismatch"
    assert (await client.ok("accept_terms", version=TERMS))["terms_version"] == TERMS
    await client.sync()
    conv = await client.create([peer.id])
    assert (await client.ok("list"))["conversations"][0]["conv"] == conv


async def test_terms_can_be_accepted_over_http(admin: Admin) -> None:
    account = await admin.user(terms=False)
    async with httpx.AsyncClient(base_url=admin.server.base_url) as http:
        headers = {"Authorization": f"Bearer {account.token}"}
        bad = await http.post("/v1/auth/terms", json={"version": "nope"}, headers=headers)
        assert (bad.status_code, bad.json()["code"]) == (409, "terms_version_mismatch")
        ok = await http.post("/v1/auth/terms", json={"version": TERMS}, headers=headers)
        assert ok.json() == {"terms_version": TERMS, "terms_accepted": True}
    client = await admin.connect(account)
    assert client.hello is not None and client.hello["terms_accepted"] is True
    await client.ok("list")


async def test_second_auth_on_an_open_session_is_an_error(admin: Admin) -> None:
    account = await admin.user()
    client = await admin.connect(account)
    assert await client.error("auth", token=account.token) == "invalid_state"
    await client.ok("ping")


async def test_cors_allows_only_the_allowed_origins(server: ServerProcess) -> None:
    preflight = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type",
    }
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        ok = await http.options("/v1/auth/login", headers={"Origin": ORIGIN, **preflight})
        evil = await http.options(
            "/v1/auth/login", headers={"Origin": "https://evil.example", **preflight}
        )
        simple = await http.get("/v1/auth/terms", headers={"Origin": ORIGIN})
    assert ok.status_code == 200 and ok.headers["access-control-allow-origin"] == ORIGIN
    assert evil.status_code == 400 and "access-control-allow-origin" not in evil.headers
    assert simple.headers["access-control-allow-origin"] == ORIGIN


async def test_a_revocation_from_another_process_closes_an_idle_socket(admin: Admin) -> None:
    """``chatd user disable`` runs in another process and revokes in the database; the server
    learns it from its once-a-second sweep of live sessions, without any request from the
    client (the socket stays idle)."""
    account = await admin.user()
    idle = await admin.connect(account)
    await admin.store.revoke_session_token(
        __import__("hashlib").sha256(account.token.encode()).digest(), int(time.time() * 1000)
    )
    assert await idle.wait_closed(3) == (CloseCode.LOGGED_OUT, "logged_out")


async def test_chatd_user_disable_closes_live_sockets_with_4004(admin: Admin) -> None:
    """The real admin command, in its own process, on the running server's database: the
    person's sockets close with 4004 ``user_disabled`` (as documented), not 4003 — the client
    must say "your account is disabled", not "log in again".  After ``chatd user enable`` the
    tokens the disable revoked stay revoked: the person logs in again."""
    account = await admin.user()
    phone, laptop = await admin.connect(account), await admin.connect(account)
    env = {"CHATD_TERMS_VERSION": TERMS}
    data = admin.server.data_dir
    disabled = await asyncio.to_thread(run_chatd, data, "user", "disable", account.login, env=env)
    assert disabled.returncode == 0, disabled.stderr
    for client in (phone, laptop):
        assert await client.wait_closed(10) == (CloseCode.USER_DISABLED, "user_disabled")

    enabled = await asyncio.to_thread(run_chatd, data, "user", "enable", account.login, env=env)
    assert enabled.returncode == 0, enabled.stderr
    again = await WsClient.open(admin.server.ws_url)
    await again.send_raw(pack({"op": "auth", "rid": 1, "token": account.token}))
    assert await again.wait_closed(10) == (CloseCode.LOGGED_OUT, "logged_out")
    async with httpx.AsyncClient(base_url=admin.server.base_url) as http:
        response = await http.post(
            "/v1/auth/login", json={"login": account.login, "password": PASSWORD}
        )
    assert response.status_code == 200, response.text
