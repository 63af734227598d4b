"""``CHATD_DEBUG=true`` logs no secret: a scripted session against a real debug server, then
the whole server log is searched for every secret of it — as text, and as the hexadecimal
dumps of frames that protocol libraries write at debug level (any 6 bytes in a row)."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx

from tests.gateway.client import WsClient, cmid
from tests.gateway.conftest import PASSWORD, admin_on, start_server, stop_server

WINDOW = 6  # bytes of a secret that must not appear together, as text or as hex


def traces(secret: str) -> list[str]:
    """What of ``secret`` must not be in a log: itself, and each run of WINDOW bytes, as
    text and as space-separated or packed hexadecimal."""
    data = secret.encode()
    found = [secret]
    for start in range(len(data) - WINDOW + 1):
        chunk = data[start : start + WINDOW]
        found += [chunk.decode(errors="replace"), chunk.hex(" "), chunk.hex()]
    return found


async def test_a_debug_log_holds_no_secret_of_a_session(tmp_path: Path, password_hash: str) -> None:
    tag = uuid.uuid4().hex[:10]
    typed_in_login = f"MdpDansLeLogin-{tag}"  # a password typed into the login field
    wrong_password = f"FauxMotDePasse-{tag}"
    marker = f"Marqueur clinique {tag}"
    name = f"Suivi Mme Secret {tag}"
    new_name = f"Renommee Secret {tag}"
    server = start_server(tmp_path, {"CHATD_DEBUG": "true"})
    try:
        async for admin in admin_on(server, password_hash):
            account, colleague = await admin.users(2)
            async with httpx.AsyncClient(base_url=server.base_url) as http:
                typo = await http.post(
                    "/v1/auth/login", json={"login": typed_in_login, "password": "x"}
                )
                wrong = await http.post(
                    "/v1/auth/login", json={"login": account.login, "password": wrong_password}
                )
                right = await http.post(
                    "/v1/auth/login", json={"login": account.login, "password": PASSWORD}
                )
                assert (typo.status_code, wrong.status_code, right.status_code) == (401, 401, 200)
                token = right.json()["token"]
                client = await WsClient.open(server.ws_url, token)
                await client.sync()
                conv = await client.create([colleague.id], name=name, text=None)
                await client.send(conv, marker)
                await client.ok("rename", conv=conv, name=new_name, client_msg_id=cmid())
                await client.close()
                logout = await http.post(
                    "/v1/auth/logout", headers={"Authorization": f"Bearer {token}"}
                )
                assert logout.status_code == 200
    finally:
        stop_server(server)
    log = server.log()
    assert f"DEBUG chatd.auth: login: user {account.id}" in log  # debug logging was on
    secrets = {
        "password typed as login": typed_in_login,
        "wrong password": wrong_password,
        "password": PASSWORD,
        "token": token,
        "message text": marker,
        "conversation name": name,
        "new conversation name": new_name,
        "login": account.login,
    }
    for what, secret in secrets.items():
        leaked = [trace for trace in traces(secret) if trace in log]
        assert not leaked, f"the {what} is in the debug log: {leaked[:3]}"
