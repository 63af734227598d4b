"""Which language the server writes its sentences in, through the real server.

docs/protocol.md §1 *Languages*: the account's choice, else the client's (``auth``'s
``lang``, else ``Accept-Language``), else ``CHATD_DEFAULT_LANGUAGE`` (``fr``).  The expected
sentences are taken from the same catalogues in this process, so that the tests say *which*
language was chosen without repeating translations.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from websockets.asyncio.client import connect

from chatd.core.errors import InvalidCredentialsError, UnknownOpError
from tests.gateway.client import TIMEOUT, WsClient
from tests.gateway.conftest import PASSWORD, Account, Admin, start_server, stop_server

FRENCH = UnknownOpError().message_in("fr")
ENGLISH = UnknownOpError().message_in("en")


async def open_client(
    admin: Admin, account: Account, *, lang: str | None = None, accept: str | None = None
) -> tuple[WsClient, dict[str, Any]]:
    headers = {"Accept-Language": accept} if accept else None
    ws = await connect(
        admin.server.ws_url, additional_headers=headers, open_timeout=TIMEOUT, compression=None
    )
    client = WsClient(ws)
    admin.clients.append(client)
    auth: dict[str, Any] = {"token": account.token}
    if lang is not None:
        auth["lang"] = lang
    hello = await client.request("auth", **auth)
    assert hello["op"] == "hello", hello
    return client, hello


async def unknown_op_sentence(client: WsClient) -> str:
    reply = await client.request("no_such_op")
    assert reply["code"] == "unknown_op"
    return str(reply["message"])


def test_the_catalogue_translates() -> None:
    assert FRENCH != ENGLISH  # otherwise nothing below could tell the languages apart


async def test_french_unless_the_client_or_the_account_says_otherwise(admin: Admin) -> None:
    account = await admin.user()
    plain, hello = await open_client(admin, account)
    assert (hello["language"], hello["user"]["language"]) == ("fr", None)
    assert await unknown_op_sentence(plain) == FRENCH

    asks_english, hello = await open_client(admin, account, lang="en")
    assert hello["language"] == "en"
    assert await unknown_op_sentence(asks_english) == ENGLISH

    header_only, _ = await open_client(admin, account, accept="en-GB,en;q=0.9,fr;q=0.5")
    assert await unknown_op_sentence(header_only) == ENGLISH
    # ``lang`` is the client's own word: it beats the header; an unknown one is ignored.
    both, _ = await open_client(admin, account, lang="fr", accept="en")
    assert await unknown_op_sentence(both) == FRENCH
    german, hello = await open_client(admin, account, lang="de", accept="de-DE, en;q=0.2")
    assert hello["language"] == "en"
    assert await unknown_op_sentence(german) == ENGLISH


async def test_the_accounts_choice_comes_first_and_can_be_forgotten(admin: Admin) -> None:
    account = await admin.user()
    client, _ = await open_client(admin, account, lang="fr")
    reply = await client.ok("set_language", language="en")
    assert (reply["language"], reply["speaking"]) == ("en", "en")
    assert await unknown_op_sentence(client) == ENGLISH  # this session at once

    later, hello = await open_client(admin, account, lang="fr", accept="fr")
    assert (hello["language"], hello["user"]["language"]) == ("en", "en")
    assert await unknown_op_sentence(later) == ENGLISH
    stored = await admin.store.get_user(account.id)
    assert stored.language == "en"

    reply = await later.ok("set_language", language=None)
    assert (reply["language"], reply["speaking"]) == (None, "fr")  # back to the client's
    assert await unknown_op_sentence(later) == FRENCH
    for bad in ("de", "EN", 5, "fr-FR"):
        refused = await later.request("set_language", language=bad)
        assert (refused["op"], refused["code"]) == ("error", "invalid_request"), refused


async def test_set_language_is_allowed_at_the_terms_gate(admin: Admin) -> None:
    account = await admin.user(terms=False)
    client, hello = await open_client(admin, account)
    assert hello["terms_accepted"] is False
    assert (await client.ok("set_language", language="en"))["speaking"] == "en"
    refused = await client.request("list")
    assert refused["code"] == "terms_not_accepted"
    assert refused["message"] == refused_message("terms_not_accepted", "en")


def refused_message(code: str, lang: str) -> str:
    from chatd.core import errors

    (kind,) = [
        k
        for k in vars(errors).values()
        if isinstance(k, type) and issubclass(k, errors.ChatdError) and k.code == code
    ]
    return str(kind().message_in(lang))  # type: ignore[arg-type]


async def test_http_answers_follow_accept_language_then_the_account(admin: Admin) -> None:
    account = await admin.user()
    async with httpx.AsyncClient(base_url=admin.server.base_url) as http:
        default = await http.post("/v1/auth/login", json={"login": account.login, "password": "x"})
        english = await http.post(
            "/v1/auth/login",
            json={"login": account.login, "password": "y"},
            headers={"Accept-Language": "en-US"},
        )
        assert default.json()["message"] == InvalidCredentialsError().message_in("fr")
        assert english.json()["message"] == InvalidCredentialsError().message_in("en")

        await admin.store.set_user_language(account.id, "en")
        ok = await http.post(
            "/v1/auth/login",
            json={"login": account.login, "password": PASSWORD},
            headers={"Accept-Language": "fr"},
        )
        body = ok.json()
        assert (body["language"], body["user"]["language"]) == ("en", "en")
        # An authenticated route answers in the account's language, whatever the header.
        refused = await http.post(
            "/v1/auth/terms",
            json={"version": "not-the-current-one"},
            headers={"Authorization": f"Bearer {body['token']}", "Accept-Language": "fr"},
        )
        assert refused.json()["code"] == "terms_version_mismatch"
        assert refused.json()["message"] == refused_message("terms_version_mismatch", "en")


async def test_the_servers_default_language_is_a_setting(
    tmp_path: Path, password_hash: str
) -> None:
    server = start_server(tmp_path, {"CHATD_DEFAULT_LANGUAGE": "en"})
    store = server.store()
    await store.open()
    admin = Admin(server, store, password_hash)
    try:
        client, hello = await open_client(admin, await admin.user())
        assert hello["language"] == "en"
        assert await unknown_op_sentence(client) == ENGLISH
        french, _ = await open_client(admin, await admin.user(), lang="fr")
        assert await unknown_op_sentence(french) == FRENCH
    finally:
        await admin.close()
        stop_server(server)
