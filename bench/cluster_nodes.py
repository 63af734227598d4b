"""The deployments the cluster benchmark measures: two ``chatd serve`` nodes on PostgreSQL +
NATS, or one node on SQLite, each fresh, with users, tokens and conversations made before
the nodes start.

Two nodes are started as ``tests/gateway/test_cluster.py`` starts them: one shared DATA_DIR
holding the key file, ``chatd migrate`` once, then each node with its own ``CHATD_NODE_ID``
on the same database and broker.  Seeding goes through chatd's own services
(:mod:`bench.accounts`: no Argon2 per account), into the migrated database.  The clients of
each conversation alternate between the nodes, so every conversation has members on both
and every message has deliveries on its sender's node and on the other one.

The per-connection rate limit is lifted (``CHATD_WS_RATE``/``BURST``) on every deployment
alike: a ``--quick`` run has few clients, each sending more than the default 20 a second, and
what is measured is the delivery path, not the limiter.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bench import gateway_bench as gb
from chatd.crypto.keyring import KeyRing, write_key_file
from tests.servers.nats import NatsServer
from tests.servers.postgres import PostgresServer

NODE_NAMES = ("a", "b")
LIFTED_LIMITS = {"CHATD_WS_RATE": "1000000", "CHATD_WS_BURST": "1000000"}
MIGRATE_TIMEOUT = 120.0
_databases = itertools.count(1)


@dataclass
class Deployment:
    servers: list[gb.Server]  # the nodes clients connect to
    world: gb.World
    problems: list[str]  # filled when the nodes stop: exit codes, errors in their logs
    keep: bool = False  # keep the directory and the nodes' logs (the run went wrong)


@dataclass
class Backing:
    """The PostgreSQL and nats-server every cluster deployment of a run uses (a fresh
    database each time)."""

    postgres: PostgresServer
    nats: NatsServer

    def cpu_seconds(self) -> float:
        """CPU time of both servers' process trees (PostgreSQL's backends included)."""
        roots = [p.pid for p in (self.postgres.proc, self.nats.proc) if p is not None]
        return sum(tree_cpu_seconds(root) for root in roots)


@contextlib.contextmanager
def backing() -> Iterator[Backing]:
    with PostgresServer.create() as postgres, NatsServer.create() as nats:
        yield Backing(postgres, nats)


def tree_cpu_seconds(root: int) -> float:
    """User + system CPU of ``root`` and its live descendants, plus what its reaped children
    used (``cutime``/``cstime``: PostgreSQL's ended backends)."""
    stats: dict[int, tuple[int, list[str]]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
                stats[int(entry)] = (int(fields[1]), fields)
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in stats.items():
        children.setdefault(ppid, []).append(pid)
    ticks, todo = 0, [root]
    while todo:
        pid = todo.pop()
        if pid in stats:
            fields = stats[pid][1]
            ticks += sum(int(f) for f in fields[11:15])  # utime stime cutime cstime
        todo.extend(children.get(pid, []))
    return ticks / os.sysconf("SC_CLK_TCK")


def _migrate(shared: Path, database_url: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "chatd", "migrate"],
        env=gb.chatd_env(shared, {"CHATD_DATABASE_URL": database_url}),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=MIGRATE_TIMEOUT,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"chatd migrate failed:\n{done.stdout}\n{done.stderr}")


def _spread(world: gb.World, nodes: int) -> gb.World:
    """Clients alternate between the nodes; a world lists each conversation's clients one
    after the other, so every conversation of two members or more sits on both nodes."""
    clients = tuple(dataclasses.replace(c, node=i % nodes) for i, c in enumerate(world.clients))
    return dataclasses.replace(world, clients=clients)


@contextlib.contextmanager
def deployment(
    target: str,
    workdir: Path,
    users: int,
    conv_size: int,
    *,
    placement: gb.Placement,
    backing: Backing | None = None,
) -> Iterator[Deployment]:
    """``target`` "cluster" (two nodes on ``backing``) or "sqlite" (one node), fresh and
    seeded; the nodes are stopped on exit and the directory removed unless something went
    wrong (then it is kept with the nodes' logs)."""
    rundir = Path(tempfile.mkdtemp(prefix=f"{target}-", dir=workdir))
    shared = rundir / "shared"  # DATA_DIR: the key file every node reads
    extra = dict(LIFTED_LIMITS)
    names: tuple[str, ...] = ("solo",)
    database_url = None
    if target == "cluster":
        assert backing is not None
        database_url = backing.postgres.create_database(f"cluster{next(_databases)}")
        write_key_file(shared / "master.keys", KeyRing.generate(), replace=False)
        _migrate(shared, database_url)
        extra |= {"CHATD_DATABASE_URL": database_url, "CHATD_BROKER_URL": backing.nats.url}
        names = NODE_NAMES
    elif target != "sqlite":
        raise ValueError(target)
    world = gb.chatd_world(shared, users, conv_size, senders=True, database_url=database_url)
    deployed = Deployment([], _spread(world, len(names)), [])
    try:
        for name in names:
            env = gb.chatd_env(shared, {**extra, "CHATD_NODE_ID": f"bench-{name}"})
            deployed.servers.append(
                gb.start_server(
                    f"node-{name}",
                    [sys.executable, "-m", "chatd", "serve"],
                    env,
                    rundir,
                    cpu=placement.server_cpu,
                    nofile=users + 4096,
                )
            )
        yield deployed
    finally:
        for server in deployed.servers:
            deployed.problems.extend(server.stop())
        if not deployed.problems and not deployed.keep:
            shutil.rmtree(rundir, ignore_errors=True)
