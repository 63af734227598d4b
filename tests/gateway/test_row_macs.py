"""Authenticated rows through a real server (issue 13): a row edited in the database file
(the attacker's sqlite3 shell, triggers dropped and put back) is refused at run time with
the answer the user would get anyway, and the operator log names the row by its ids only.

A server of this module's own: its database is tampered with, which the shared server's
other tests must not see.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from chatd.core.records import NewUser, UserProfile
from chatd.crypto.passwords import hash_password
from chatd.gateway.protocol import pack
from tests.attachments import samples
from tests.gateway.client import WsClient
from tests.gateway.conftest import (
    LENIENT,
    PASSWORD,
    Admin,
    ServerProcess,
    admin_on,
    start_server,
    stop_server,
)
from tests.store.test_tamper import tampering

INTEGRITY = "failed its check"


@pytest.fixture(scope="module")
def macs_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = start_server(tmp_path_factory.mktemp("row-macs"), LENIENT)
    yield server
    stop_server(server)


@pytest.fixture
async def admin(macs_server: ServerProcess, password_hash: str) -> AsyncIterator[Admin]:
    async for a in admin_on(macs_server, password_hash):
        yield a


async def login(admin: Admin, login: str, password: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=admin.server.base_url) as http:
        return await http.post("/v1/auth/login", json={"login": login, "password": password})


async def auth_outcome(admin: Admin, token: str) -> tuple[int | None, str | None]:
    client = await WsClient.open(admin.server.ws_url)
    await client.send_raw(pack({"op": "auth", "rid": 1, "token": token}))
    return await client.wait_closed()


async def test_an_unrevoked_token_is_refused(admin: Admin) -> None:
    account = await admin.user()
    digest = hashlib.sha256(account.token.encode()).digest()
    await admin.store.revoke_session_token(digest, int(time.time() * 1000))
    revoked = await auth_outcome(admin, account.token)
    with tampering(admin.server.data_dir / "chatd.sqlite3") as conn:
        conn.execute("DROP TRIGGER auth_tokens_revoke_once")
        conn.execute("UPDATE auth_tokens SET revoked_at = NULL WHERE token_hash = ?", (digest,))
    # Refused as an unknown token is: no hint that the row was recognised.
    unrevoked = await auth_outcome(admin, account.token)
    unknown = await auth_outcome(admin, "not-a-token-" + account.token[12:])
    assert unrevoked == unknown and unrevoked[0] is not None
    assert revoked[0] is not None  # and it was refused before the edit too
    log = admin.server.log()
    assert f"the auth_tokens row of a token of user {account.id} {INTEGRITY}" in log
    assert digest.hex() not in log and account.token not in log


async def test_a_copied_password_hash_logs_nobody_in(admin: Admin) -> None:
    """Everyone's password made the attacker's: the hash of an account whose password they
    know, copied onto the victim's row."""
    known = await admin.user()
    victim = await admin.store.create_user(
        NewUser(
            f"victim{known.id}",
            hash_password("une autre phrase de passe très longue"),
            UserProfile("Bob", "Test", "Infirmier", "CH Test", ""),
        )
    )
    with tampering(admin.server.data_dir / "chatd.sqlite3") as conn:
        conn.execute(
            "UPDATE users SET password_hash = (SELECT password_hash FROM users WHERE id = ?)"
            " WHERE id = ?",
            (known.id, victim.id),
        )
    response = await login(admin, victim.login, PASSWORD)
    wrong = await login(admin, known.login, "not the password")
    assert response.status_code == wrong.status_code == 401
    assert response.json() == wrong.json()
    assert (await login(admin, known.login, PASSWORD)).status_code == 200  # untouched row
    assert f"the users row of user {victim.id} {INTEGRITY}" in admin.server.log()


async def test_a_reenabled_account_stays_out(admin: Admin) -> None:
    account = await admin.user()
    await admin.store.set_user_disabled(account.id, True)
    with tampering(admin.server.data_dir / "chatd.sqlite3") as conn:
        conn.execute("UPDATE users SET disabled = 0 WHERE id = ?", (account.id,))
    response = await login(admin, account.login, PASSWORD)
    assert (response.status_code, response.json()["code"]) == (401, "invalid_credentials")
    # Its token was revoked by the disable; mint one as an attacker could not, to show the
    # account row itself is refused too.
    token = await admin.token(account.id)
    assert await auth_outcome(admin, token) == await auth_outcome(admin, "x" * 43)


async def test_an_attachment_with_another_type_is_not_served(admin: Admin) -> None:
    account = await admin.user()
    headers = {"Authorization": f"Bearer {account.token}"}
    async with httpx.AsyncClient(base_url=admin.server.base_url, timeout=30) as http:
        response = await http.post(
            "/v1/attachments",
            content=samples.pdf_document(),
            headers={**headers, "X-File-Name": "cr.pdf"},
        )
        assert response.status_code == 201, response.text
        ref = response.json()["id"]
        assert (await http.get(f"/v1/attachments/{ref}", headers=headers)).status_code == 200
        with tampering(admin.server.data_dir / "chatd.sqlite3") as conn:
            conn.execute("DROP TRIGGER attachments_reference_once")
            conn.execute(
                "UPDATE attachments SET mime = 'text/html', kind = 'html' WHERE uploader = ?",
                (account.id,),
            )
        edited = await http.get(f"/v1/attachments/{ref}", headers=headers)
        unknown = await http.get(f"/v1/attachments/{'1' * len(ref)}", headers=headers)
    assert edited.status_code == unknown.status_code == 404
    assert edited.json() == unknown.json()
    assert "text/html" not in edited.headers.get("content-type", "")
    assert "the attachments row of attachment" in admin.server.log()
