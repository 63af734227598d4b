"""The ``store`` fixture, parametrised over every backend.

A backend joins the contract suite (and the property tests) with one function: a
:class:`MakeStore` added to ``BACKENDS``.  Contract tests only ever see the :class:`Store`
contract: they use ``store`` (opened on a fresh database) and, when they must close and reopen
the same database or choose options (window size, clock, key ring), ``store_factory``.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

import pytest

from chatd.core.events import Event, EventKind
from chatd.crypto.keyring import KeyRing
from chatd.store.contract import Store
from chatd.store.postgres.store import PostgresStore
from chatd.store.sqlite import SqliteStore


class MakeStore(Protocol):
    def __call__(
        self,
        directory: Path,
        ring: KeyRing,
        *,
        visible_window: int,
        clock_ms: Callable[[], int] | None,
        durable: bool,
        dsn: str | None,
    ) -> Store:
        """An unopened store whose data lives under ``directory`` (the same data on every
        call with the same directory), or in the database ``dsn`` for a server backend
        (a fresh database per test, from the ``postgres_dsn`` fixture).  ``durable=False``
        may trade crash safety for speed (property tests, which never crash)."""
        ...


def sqlite_store(
    directory: Path,
    ring: KeyRing,
    *,
    visible_window: int,
    clock_ms: Callable[[], int] | None,
    durable: bool,
    dsn: str | None,
) -> Store:
    options: dict[str, Any] = {"synchronous": "FULL" if durable else "NORMAL"}
    if clock_ms is not None:
        options["clock_ms"] = clock_ms
    return SqliteStore(directory / "chatd.sqlite3", ring, visible_window=visible_window, **options)


def postgres_store(
    directory: Path,
    ring: KeyRing,
    *,
    visible_window: int,
    clock_ms: Callable[[], int] | None,
    durable: bool,
    dsn: str | None,
) -> Store:
    # ``durable`` is not traded away here: the server's fsync and synchronous_commit are
    # checked at connect, and a test server may not turn them off.
    assert dsn is not None, "the postgres backend needs the postgres_dsn fixture"
    options: dict[str, Any] = {}
    if clock_ms is not None:
        options["clock_ms"] = clock_ms
    return PostgresStore(
        dsn,
        ring,
        checkpoint_log=directory / "chatd.checkpoints",
        visible_window=visible_window,
        **options,
    )


# Every backend the contract suite runs on; a new backend adds its function here, and
# SERVER_BACKENDS names those whose data lives in a server (a fresh database per test).
BACKENDS: dict[str, MakeStore] = {"sqlite": sqlite_store, "postgres": postgres_store}
SERVER_BACKENDS = frozenset({"postgres"})


def make_store(
    backend: str,
    directory: Path,
    ring: KeyRing,
    *,
    visible_window: int = 200,
    clock_ms: Callable[[], int] | None = None,
    durable: bool = True,
    dsn: str | None = None,
) -> Store:
    """An unopened store of ``backend`` (see :class:`MakeStore`)."""
    return BACKENDS[backend](
        directory, ring, visible_window=visible_window, clock_ms=clock_ms, durable=durable, dsn=dsn
    )


class StoreFactory:
    """Opens stores of one backend on one database; closes whatever is still open at teardown."""

    def __init__(self, backend: str, tmp_path: Path, ring: KeyRing, dsn: str | None) -> None:
        self.backend = backend
        self.dsn = dsn
        self.tmp_path = tmp_path
        self.ring = ring
        self._opened: list[Store] = []

    async def open(
        self,
        *,
        ring: KeyRing | None = None,
        visible_window: int = 200,
        clock_ms: Callable[[], int] | None = None,
    ) -> Store:
        """A store on this test's database (the same one on every call), opened."""
        store = make_store(
            self.backend,
            self.tmp_path,
            ring or self.ring,
            visible_window=visible_window,
            clock_ms=clock_ms,
            dsn=self.dsn,
        )
        await store.open()
        self._opened.append(store)
        return store

    async def close_all(self) -> None:
        for store in self._opened:
            await store.close()  # idempotent by contract
        self._opened.clear()


@pytest.fixture(params=sorted(BACKENDS))
async def store_factory(
    request: pytest.FixtureRequest, tmp_path: Path, ring: KeyRing
) -> AsyncIterator[StoreFactory]:
    backend = str(request.param)
    dsn = request.getfixturevalue("postgres_dsn") if backend in SERVER_BACKENDS else None
    factory = StoreFactory(backend, tmp_path, ring, dsn)
    yield factory
    await factory.close_all()


@pytest.fixture
async def store(store_factory: StoreFactory) -> Store:
    return await store_factory.open()


class FreshDatabases:
    """A database of its own for each example of a hypothesis test, which cannot take the
    function-scoped ``postgres_dsn``: ``with fresh_databases(backend) as dsn`` gives the DSN
    of a new, empty database on the session's server (dropped after the block) for a server
    backend, None for the others (whose data lives under the example's own directory)."""

    _numbers = itertools.count(1)

    def __init__(self, request: pytest.FixtureRequest) -> None:
        self._request = request

    @contextmanager
    def __call__(self, backend: str) -> Iterator[str | None]:
        if backend not in SERVER_BACKENDS:
            yield None
            return
        server = self._request.getfixturevalue("postgres_server")  # started on first use
        if not server.running:
            server.start()
        name = f"example_{os.getpid()}_{next(self._numbers)}"
        dsn = server.create_database(name)
        try:
            yield dsn
        finally:
            if not server.running:
                server.start()
            server.drop_database(name)


@pytest.fixture(scope="session")
def fresh_databases(request: pytest.FixtureRequest) -> FreshDatabases:
    return FreshDatabases(request)


def on_a_fresh_store(
    fresh_databases: FreshDatabases,
    backend: str,
    ring: KeyRing,
    body: Callable[[Store], Awaitable[None]],
) -> None:
    """Run ``body`` on an opened store of ``backend`` with a database of its own (one
    hypothesis example), in an event loop of its own; the store is closed whatever happens."""

    async def play(dsn: str | None) -> None:
        with tempfile.TemporaryDirectory() as directory:
            store = make_store(backend, Path(directory), ring, durable=False, dsn=dsn)
            await store.open()
            try:
                await body(store)
            finally:
                await store.close()

    with fresh_databases(backend) as dsn:
        asyncio.run(play(dsn))


def check_rules(log: list[Event]) -> set[int]:
    """Assert every event of ``log`` was allowed by the rules at its place; the final members."""
    members = set(log[0].payload["members"])
    for e in log[1:]:
        if e.kind == EventKind.MESSAGE:
            assert e.sender in members, e
        elif e.kind == EventKind.JOINED:
            assert e.sender in members and e.payload["user"] not in members, e
            members.add(e.payload["user"])
        elif e.kind == EventKind.LEFT:
            assert e.sender == e.payload["user"] and e.sender in members, e
            members.discard(e.sender)
        elif e.kind != EventKind.RENAMED:
            raise AssertionError(e)
    return members
