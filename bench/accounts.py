"""Accounts for benchmarks and chaos runs, made through chatd's own services.

Before the server under test starts, its data directory gets a key file, a database and
``count`` users, each with an open session: the accounts are created by the account service,
the tokens minted by the auth service (the same code as a login, without the password check,
which would cost tens of milliseconds of Argon2id per account), and the current terms of use
accepted.  Nothing here knows the backend or the token format: with ``database_url`` the same
code seeds a PostgreSQL database (migrated beforehand by ``chatd migrate``, as for the nodes).
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from chatd.config import Settings
from chatd.core.ids import UserId
from chatd.core.records import NewUser, UserProfile
from chatd.crypto.keyring import KeyRing, write_key_file
from chatd.crypto.passwords import hash_password
from chatd.services.maintenance import os_operator
from chatd.wiring import Process, running

SETUP_CONCURRENCY = 200


@dataclass(frozen=True, slots=True)
class Account:
    user_id: UserId
    login: str
    token: str  # a live session's bearer token


def setup_settings(
    data_dir: Path, terms_version: str, synchronous: str, database_url: str | None = None
) -> Settings:
    """The settings of a setup process on ``data_dir``.  ``synchronous`` is the setup's
    own durability (``OFF`` or ``NORMAL`` to go fast); closing the store checkpoints the WAL,
    so everything is on disk before the server under test opens the files with its own."""
    environ: dict[str, str] = {
        "CHATD_DATA_DIR": str(data_dir),
        "CHATD_TERMS_VERSION": terms_version,
        "CHATD_SQLITE_SYNCHRONOUS": synchronous,
    }
    if database_url is not None:
        environ["CHATD_DATABASE_URL"] = database_url
    return Settings.from_env(environ)


@asynccontextmanager
async def setup_process(
    data_dir: Path,
    terms_version: str,
    *,
    synchronous: str = "NORMAL",
    database_url: str | None = None,
) -> AsyncIterator[Process]:
    """A data directory opened with its services: a fresh one gets a new master key and a
    new SQLite database; on PostgreSQL the key file ``chatd migrate`` needed is already there
    and is kept (the nodes share it)."""
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)  # noqa: ASYNC240 - set-up
    key_file = data_dir / "master.keys"
    if database_url is None or not key_file.exists():
        write_key_file(key_file, KeyRing.generate(), replace=False)
    settings = setup_settings(data_dir, terms_version, synchronous, database_url)
    async with running(settings) as process:
        yield process


async def create_accounts(
    process: Process,
    logins: Sequence[str],
    profile: UserProfile,
) -> list[Account]:
    """One account per login, each with a session that accepted the current terms.

    Every account shares one real Argon2id hash of a random password that is then
    forgotten: nobody logs in with a password, and hashing once keeps setup fast."""
    services = process.services
    password_hash = hash_password(secrets.token_urlsafe(24))

    async def one(login: str) -> Account:
        user = await services.accounts.create(
            NewUser(login, password_hash, profile), by=os_operator()
        )
        session = await services.auth.start_session(user)
        await services.auth.accept_terms(session.principal, services.auth.terms_version)
        return Account(UserId(user.id), user.login, session.token)

    accounts: list[Account] = []
    # Concurrent in bounded slices: the store's writer commits each slice in a few batches.
    for start in range(0, len(logins), SETUP_CONCURRENCY):
        accounts.extend(await asyncio.gather(*map(one, logins[start : start + SETUP_CONCURRENCY])))
    return accounts


async def seed_accounts(
    data_dir: Path,
    terms_version: str,
    logins: Sequence[str],
    profile: UserProfile,
    *,
    synchronous: str = "NORMAL",
) -> list[Account]:
    """:func:`create_accounts` in a fresh data directory, closed afterwards."""
    async with setup_process(data_dir, terms_version, synchronous=synchronous) as process:
        return await create_accounts(process, logins, profile)
