"""Lone surrogates and invalid UTF-8 in every string field, over HTTP and over the WebSocket:
a client error with a stable code, never a 500, a crash or an ERROR log line.

JSON can escape a lone surrogate (``"\\ud800"``), which Python decodes into a ``str`` that
cannot be encoded: any code that encodes it (the hash, the database) would fail.  msgpack
cannot carry one (its strings are UTF-8 and an encoded surrogate is invalid UTF-8), so on
the WebSocket the same attempt is invalid UTF-8 in a string, refused with the whole frame.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import msgpack
import pytest

from tests.gateway.client import WsClient
from tests.gateway.conftest import PASSWORD, Admin

LONE = "\ud800"
NEW_PASSWORD = "une toute nouvelle phrase de passe 42"

# (route, body with LONE in one field, whether it needs a token, expected status and code)
HTTP_CASES: list[tuple[str, dict[str, Any], bool, int, str]] = [
    ("/v1/auth/login", {"login": LONE, "password": "x"}, False, 400, "invalid_request"),
    ("/v1/auth/login", {"login": "a", "password": LONE}, False, 400, "invalid_request"),
    ("/v1/auth/login", {"login": "a", "password": "x", LONE: 1}, False, 400, "invalid_request"),
    (
        "/v1/auth/password",
        {"old_password": LONE, "new_password": NEW_PASSWORD},
        True,
        400,
        "invalid_request",
    ),
    (
        "/v1/auth/password",
        {"old_password": PASSWORD, "new_password": LONE},
        True,
        400,
        "invalid_request",
    ),
    ("/v1/auth/terms", {"version": LONE}, True, 409, "terms_version_mismatch"),
]


def json_with_escapes(body: dict[str, Any]) -> bytes:
    """The body as JSON with ``\\uXXXX`` escapes (what a client sends for a lone surrogate)."""
    return json.dumps(body, ensure_ascii=True).encode()


@pytest.mark.parametrize(
    ("route", "body", "with_token", "status", "code"),
    HTTP_CASES,
    ids=[f"{route}:{'/'.join(map(str, body))}" for route, body, *_ in HTTP_CASES],
)
async def test_http_fields(
    admin: Admin, route: str, body: dict[str, Any], with_token: bool, status: int, code: str
) -> None:
    account = await admin.user()
    headers = {"Content-Type": "application/json"}
    if with_token:
        headers["Authorization"] = f"Bearer {account.token}"
    async with httpx.AsyncClient(base_url=admin.server.base_url) as http:
        response = await http.post(route, content=json_with_escapes(body), headers=headers)
    assert (response.status_code, response.json()["code"]) == (status, code), response.text
    assert "Traceback" not in admin.server.log()


async def test_http_file_name_header(admin: Admin) -> None:
    account = await admin.user()
    async with httpx.AsyncClient(base_url=admin.server.base_url) as http:
        response = await http.post(
            "/v1/attachments",
            content=b"%PDF-1.4\n%%EOF\n",
            headers={"Authorization": f"Bearer {account.token}", "X-File-Name": "a%ED%A0%80.pdf"},
        )
    assert (response.status_code, response.json()["code"]) == (400, "invalid_request")


# ----------------------------------------------------------------------------- WebSocket

BAD = b"\xed\xa0\x80"  # a surrogate, encoded: invalid UTF-8
HOLE = "HOLE-0123456789"  # replaced, bytes for bytes, by BAD and padding


def frame_with_bad_string(obj: dict[str, Any]) -> bytes:
    packed = msgpack.packb(obj)
    assert packed.count(HOLE.encode()) == 1
    return packed.replace(HOLE.encode(), BAD + b"x" * (len(HOLE) - len(BAD)))


WS_CASES: list[tuple[str, dict[str, Any]]] = [
    ("accept_terms", {"version": HOLE}),
    ("set_language", {"language": HOLE}),
    ("create", {"client_msg_id": HOLE, "members": [1], "name": "n", "text": "t"}),
    ("create", {"client_msg_id": "c", "members": [1], "name": HOLE, "text": "t"}),
    ("create", {"client_msg_id": "c", "members": [1], "name": "n", "text": HOLE}),
    ("send", {"client_msg_id": HOLE, "conv": 1, "text": "t"}),
    ("send", {"client_msg_id": "c", "conv": 1, "text": HOLE}),
    ("send", {"client_msg_id": "c", "conv": 1, "text": "t", "tag": HOLE}),
    ("send", {"client_msg_id": "c", "conv": 1, "text": "t", "attachments": [HOLE]}),
    ("rename", {"client_msg_id": HOLE, "conv": 1, "name": "n"}),
    ("rename", {"client_msg_id": "c", "conv": 1, "name": HOLE}),
    ("add", {"client_msg_id": HOLE, "conv": 1, "user": 2}),
    ("leave", {"client_msg_id": HOLE, "conv": 1}),
    ("users", {"logins": [HOLE]}),
    ("sync", {"convs": [], "epoch": HOLE}),
    ("history", {"conv": 1, HOLE: 1}),  # a field's name
    (HOLE, {}),  # the op itself
]


@pytest.mark.parametrize(
    ("op", "fields"), WS_CASES, ids=[f"{op}:{'/'.join(f)}" for op, f in WS_CASES]
)
async def test_websocket_fields(admin: Admin, op: str, fields: dict[str, Any]) -> None:
    account = await admin.user()
    client = await admin.connect(account)
    await client.send_raw(frame_with_bad_string({"op": op, "rid": 7, **fields}))
    await client.ok("ping")  # the bad frame was answered first, and the session goes on
    (reply,) = [m for m in client.unmatched if m.get("op") == "error"]
    assert reply["code"] == "malformed_frame"


@pytest.mark.parametrize("field", ["token", "lang"])
async def test_websocket_auth_fields(admin: Admin, field: str) -> None:
    account = await admin.user()
    client = await WsClient.open(admin.server.ws_url)
    admin.clients.append(client)
    fields = {"token": account.token, "lang": "fr", field: HOLE}
    await client.send_raw(frame_with_bad_string({"op": "auth", "rid": 1, **fields}))
    assert (await client.wait_closed())[0] == 4001
    again = await admin.connect(account)  # the server is still serving
    await again.ok("ping")
