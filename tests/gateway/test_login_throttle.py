"""The login throttle against real servers: parallel guessing, a burst hiding the right
password, spraying one address over many logins, many addresses at once, a restart, and
``X-Forwarded-For`` believed only from a trusted proxy.

A 401 answer means the password reached Argon2 (and was wrong); a 429 means the throttle
refused the attempt before any hashing: counting them observes what reached the hash.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from tests.gateway.conftest import (
    PASSWORD,
    Account,
    Admin,
    ServerProcess,
    admin_on,
    start_server,
    stop_server,
)

TIMEOUT = 60.0
PROXIED = {
    "CHATD_TRUSTED_PROXIES": "127.0.0.1/32, 10.9.0.0/16",
    "CHATD_LOGIN_LIMIT": "5",
    "CHATD_LOGIN_ADDRESS_LIMIT": "20",
    "CHATD_LOGIN_GLOBAL_LIMIT": "100000",
}
_addresses = (f"198.51.100.{i}" for i in itertools.count(1))


@pytest.fixture(scope="module")
def proxied(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = start_server(tmp_path_factory.mktemp("proxied"), PROXIED)
    yield server
    stop_server(server)


@pytest.fixture
async def proxied_admin(proxied: ServerProcess, password_hash: str) -> AsyncIterator[Admin]:
    async for admin in admin_on(proxied, password_hash):
        yield admin


async def attempt(
    http: httpx.AsyncClient, login: str, password: str, forwarded: str | None = None
) -> httpx.Response:
    headers = {} if forwarded is None else {"X-Forwarded-For": forwarded}
    body = {"login": login, "password": password}
    return await http.post("/v1/auth/login", json=body, headers=headers)


def client(server: ServerProcess) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=server.base_url,
        timeout=TIMEOUT,
        limits=httpx.Limits(max_connections=100, max_keepalive_connections=100),
    )


async def test_a_hundred_parallel_guesses_reach_argon2_five_times(proxied_admin: Admin) -> None:
    account = await proxied_admin.user()
    address = next(_addresses)
    async with client(proxied_admin.server) as http:
        answers = await asyncio.gather(
            *(attempt(http, account.login, f"wrong {i}", address) for i in range(100))
        )
    statuses = sorted(r.status_code for r in answers)
    assert statuses == [401] * 5 + [429] * 95
    refused = next(r for r in answers if r.status_code == 429)
    assert refused.json()["code"] == "rate_limited"
    assert refused.json()["message"] == (
        "Trop de tentatives de connexion échouées\u00a0; patientez une minute et réessayez."
    )


async def test_a_burst_of_wrong_guesses_hides_no_right_password(proxied_admin: Admin) -> None:
    """49 wrong guesses at once, then the right password while they are being checked: the
    guesses took the budget when they started, so the right one is refused too."""
    account = await proxied_admin.user()
    address = next(_addresses)
    async with client(proxied_admin.server) as http:
        wrong = [
            asyncio.create_task(attempt(http, account.login, f"wrong {i}", address))
            for i in range(49)
        ]
        # Wait until the server refused one guess: the budget is taken by then.
        pending: set[asyncio.Task[httpx.Response]] = set(wrong)
        async with asyncio.timeout(TIMEOUT):
            while not any(t.done() and t.result().status_code == 429 for t in wrong):
                _, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        right = await attempt(http, account.login, PASSWORD, address)
        answers = await asyncio.gather(*wrong)
    assert right.status_code == 429 and "token" not in right.json()
    assert sum(1 for r in answers if r.status_code == 401) <= 5


async def test_spraying_one_password_over_many_logins_hits_the_address_budget(
    proxied_admin: Admin,
) -> None:
    accounts: list[Account] = await proxied_admin.users(22)
    address = next(_addresses)
    async with client(proxied_admin.server) as http:
        answers = [await attempt(http, a.login, "Printemps2026!", address) for a in accounts]
        elsewhere = await attempt(http, accounts[-1].login, "Printemps2026!", next(_addresses))
    assert [r.status_code for r in answers] == [401] * 20 + [429] * 2
    assert "depuis votre réseau" in answers[-1].json()["message"]
    assert elsewhere.status_code == 401  # another address has its own budget


async def test_x_forwarded_for_is_read_from_the_right(proxied_admin: Admin) -> None:
    """The client cannot pick its address by writing one in front of what the trusted
    proxies appended; hops inside a trusted network are skipped."""
    address = next(_addresses)
    async with client(proxied_admin.server) as http:
        for i in range(20):
            assert (await attempt(http, f"nobody{i}-{address}", "x", address)).status_code == 401
        spoofed = await attempt(http, f"nobody-s-{address}", "x", f"203.0.113.5, {address}")
        via_inner = await attempt(http, f"nobody-i-{address}", "x", f"{address}, 10.9.3.4")
    assert spoofed.status_code == 429
    assert via_inner.status_code == 429


async def test_x_forwarded_for_is_ignored_without_trusted_proxies(tmp_path: Path) -> None:
    server = start_server(tmp_path, {"CHATD_LOGIN_ADDRESS_LIMIT": "3"})
    try:
        async with client(server) as http:
            answers = [await attempt(http, f"nobody{i}", "x", f"198.18.0.{i}") for i in range(4)]
    finally:
        stop_server(server)
    assert [r.status_code for r in answers] == [401] * 3 + [429]


async def test_the_global_budget_stops_spraying_from_many_addresses(tmp_path: Path) -> None:
    server = start_server(
        tmp_path, {"CHATD_TRUSTED_PROXIES": "127.0.0.1", "CHATD_LOGIN_GLOBAL_LIMIT": "6"}
    )
    try:
        async with client(server) as http:
            answers = [await attempt(http, f"nobody{i}", "x", f"198.18.1.{i}") for i in range(8)]
    finally:
        stop_server(server)
    assert [r.status_code for r in answers] == [401] * 6 + [429] * 2
    assert "Le service reçoit trop" in answers[-1].json()["message"]


async def test_the_throttle_survives_a_restart(tmp_path: Path, password_hash: str) -> None:
    server = start_server(tmp_path, {})
    try:
        async for admin in admin_on(server, password_hash):
            account = await admin.user()
        async with client(server) as http:
            wrong = [await attempt(http, account.login, "wrong") for _ in range(5)]
    finally:
        stop_server(server)
    assert [r.status_code for r in wrong] == [401] * 5
    server = start_server(tmp_path, {})
    try:
        async with client(server) as http:
            right = await attempt(http, account.login, PASSWORD)
    finally:
        stop_server(server)
    assert right.status_code == 429 and "token" not in right.json()
