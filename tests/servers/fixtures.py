"""Pytest fixtures for real PostgreSQL and NATS servers (loaded by ``tests/conftest.py``).

- ``postgres_server`` / ``nats_server``: one server of each kind for the whole session,
  started on first use and stopped at the end of the session, whatever the tests did.
- ``postgres_dsn``: a new database on the session server for one test (``CREATE DATABASE …
  TEMPLATE template0``), dropped after it.  ``nats_url``: the session server's URL.  Both
  start their session server again if an earlier test left it stopped.
- ``postgres_factory`` / ``nats_factory``: servers of a test's own, for tests that stop,
  kill or restart them (the chaos tests): the shared servers are never disturbed, and each
  one is destroyed when its test ends.

A missing binary raises :class:`~tests.servers.processes.ServerNotInstalled` (an error, never
a skip).  Module-scoped databases: call ``postgres_server.create_database`` /
``drop_database`` from a fixture of that scope.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.servers.nats import NatsServer
from tests.servers.postgres import PostgresServer

_database_numbers = itertools.count(1)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    with PostgresServer.create() as server:
        yield server


@pytest.fixture
def postgres_dsn(postgres_server: PostgresServer) -> Iterator[str]:
    """The DSN of an empty database that only this test uses."""
    if not postgres_server.running:
        postgres_server.start()
    name = f"test_{os.getpid()}_{next(_database_numbers)}"
    dsn = postgres_server.create_database(name)
    yield dsn
    if not postgres_server.running:
        postgres_server.start()
    postgres_server.drop_database(name)


@pytest.fixture
def postgres_factory() -> Iterator[Callable[..., PostgresServer]]:
    """``postgres_factory(settings={...})`` → a new cluster of this test's own, started."""
    servers: list[PostgresServer] = []

    def make(**options: Any) -> PostgresServer:
        server = PostgresServer.create(**options)
        servers.append(server)
        return server

    yield make
    _destroy_all(servers)


@pytest.fixture(scope="session")
def nats_server() -> Iterator[NatsServer]:
    with NatsServer.create() as server:
        yield server


@pytest.fixture
def nats_url(nats_server: NatsServer) -> str:
    if not nats_server.running:
        nats_server.start()
    return nats_server.url


@pytest.fixture
def nats_factory() -> Iterator[Callable[..., NatsServer]]:
    """``nats_factory(jetstream=False)`` → a nats-server of this test's own, started."""
    servers: list[NatsServer] = []

    def make(**options: Any) -> NatsServer:
        server = NatsServer.create(**options)
        servers.append(server)
        return server

    yield make
    _destroy_all(servers)


def _destroy_all(servers: list[PostgresServer] | list[NatsServer]) -> None:
    """Destroy every server, even when one of them fails to stop; re-raise the first error."""
    errors: list[BaseException] = []
    for server in servers:
        try:
            server.destroy()
        except BaseException as exc:
            errors.append(exc)
    if errors:
        raise errors[0]
