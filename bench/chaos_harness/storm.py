"""The resume storm: N clients, each having missed M events, all reconnect at once.

1. ``clients`` users in conversations of ``conv_size`` (plus one writer user per
   conversation group); every client connects once, syncs and holds seq 1 (``created``).
2. Every client disconnects; the writers append ``missed`` messages to every conversation
   (so every client misses ``missed`` events).
3. All clients reconnect at the same moment: WebSocket handshake, ``auth``, ``sync`` with
   the seq they hold.  A client has *resumed* when the ``ok`` of its ``sync`` arrived, after
   exactly the events it missed, in order (checked).  Reported: the time until every
   client has resumed (the figure), per-client p50/p99, and the CPU the server and the
   harness spent (the harness runs on the same 2 cores).
"""

from __future__ import annotations

import asyncio
import itertools
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack
from websockets.asyncio.client import ClientConnection, connect

from .checker import percentile
from .server import Account, ChaosServer, create_accounts

TIMEOUT = 120.0


@dataclass(frozen=True)
class StormConfig:
    clients: int = 1000
    missed: int = 50
    conv_size: int = 10
    goal_seconds: float = 2.0
    workdir: Path | None = None
    profile: Path | None = None  # cProfile output of the server
    # The writers pipeline thousands of sends: lift the per-connection rate limit.
    server_env: tuple[tuple[str, str], ...] = (
        ("CHATD_WS_RATE", "1000000"),
        ("CHATD_WS_BURST", "1000000"),
    )


@dataclass
class StormReport:
    config: StormConfig
    resumed: int = 0
    wrong: list[str] = field(default_factory=list)
    events: int = 0
    total_seconds: float = 0.0
    per_client: list[float] = field(default_factory=list)
    server_cpu: float = 0.0
    harness_cpu: float = 0.0
    max_rss_mb: float = 0.0
    setup_seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return (
            not self.wrong
            and self.resumed == self.config.clients
            and self.total_seconds <= self.config.goal_seconds
        )

    def table(self) -> str:
        c = self.config
        rows = [
            ("clients × missed events", f"{c.clients} × {c.missed}"),
            ("resumed (all missed events, in order, then ok)", f"{self.resumed}/{c.clients}"),
            ("events delivered", str(self.events)),
            (
                "**time until all resumed**",
                f"{self.total_seconds:.2f} s (goal {c.goal_seconds:g} s)",
            ),
            (
                "per client p50 / p99",
                f"{percentile(self.per_client, 0.5):.2f} s"
                f" / {percentile(self.per_client, 0.99):.2f} s",
            ),
            ("server CPU during the storm", f"{self.server_cpu:.2f} s"),
            ("harness CPU during the storm", f"{self.harness_cpu:.2f} s"),
            ("max server RSS", f"{self.max_rss_mb:.0f} MiB"),
            ("wrong streams", str(len(self.wrong))),
            ("verdict", "PASS" if self.ok else "FAIL"),
        ]
        width = max(len(k) for k, _ in rows)
        lines = [f"| {'':{width}} | |", f"|{'-' * (width + 2)}|---|"]
        lines += [f"| {k:{width}} | {v} |" for k, v in rows]
        lines += [f"  {w}" for w in self.wrong[:10]]
        return "\n".join(lines)


def _pack(obj: Any) -> bytes:
    return bytes(msgpack.packb(obj, use_bin_type=True))


class Wire:
    """A minimal pipelining client: requests by rid, events collected."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.rids = itertools.count(1)
        self.events: list[tuple[int, int]] = []
        self.archived = 0

    @classmethod
    async def open(cls, url: str, token: str) -> Wire:
        ws = await connect(
            url,
            max_size=16 * 1024 * 1024,
            open_timeout=TIMEOUT,
            ping_interval=None,
            compression=None,
        )
        wire = cls(ws)
        (hello,) = await wire.call([("auth", {"token": token})])
        if hello.get("op") != "hello":
            raise RuntimeError(f"auth refused: {hello}")
        return wire

    async def call(self, requests: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
        """Send all requests at once, then read until every one is answered."""
        rids = []
        for op, fields in requests:
            rid = next(self.rids)
            rids.append(rid)
            await self.ws.send(_pack({"op": op, "rid": rid, **fields}))
        answers: dict[int, dict[str, Any]] = {}
        while len(answers) < len(rids):
            async with asyncio.timeout(TIMEOUT):
                raw = await self.ws.recv()
            if not isinstance(raw, bytes):
                continue
            msg = msgpack.unpackb(raw)
            op = msg.get("op")
            if op == "event":
                self.events.append((msg["conv"], msg["seq"]))
            elif op == "archived":
                self.archived += 1
            elif op in ("ok", "error", "hello"):
                answers[msg["rid"]] = msg
        return [answers[rid] for rid in rids]


def cpu_seconds(pid: int) -> float:
    import os

    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def run_storm(config: StormConfig) -> StormReport:
    tmp = config.workdir is None
    workdir = config.workdir or Path(tempfile.mkdtemp(prefix="chatd-storm-"))
    server = ChaosServer(workdir, dict(config.server_env), profile=config.profile)
    report = StormReport(config)
    try:
        await _storm(config, server, report)
    finally:
        await server.stop()
        server.force_stop()
        if tmp:
            shutil.rmtree(workdir, ignore_errors=True)
    return report


async def _storm(config: StormConfig, server: ChaosServer, report: StormReport) -> None:
    started = time.monotonic()
    groups = -(-config.clients // config.conv_size)
    accounts = await create_accounts(server.data_dir, config.clients + groups)
    storm_users, writers = accounts[: config.clients], accounts[config.clients :]
    await server.start()
    url = server.ws_url
    # 1. One conversation per group: a writer and conv_size storm users.
    conv_of: dict[int, int] = {}
    writer_wires: list[tuple[Wire, int]] = []
    for g, writer in enumerate(writers):
        members = storm_users[g * config.conv_size : (g + 1) * config.conv_size]
        wire = await Wire.open(url, writer.token)
        (ok,) = await wire.call(
            [
                (
                    "create",
                    {
                        "client_msg_id": f"storm-c{g}",
                        "name": f"Storm {g}",
                        "members": [m.user_id for m in members],
                    },
                )
            ]
        )
        conv = int(ok["conv"])
        for m in members:
            conv_of[m.user_id] = conv
        writer_wires.append((wire, conv))
    # Every storm client connects once and holds what there is (seq 1, created).
    held: dict[int, int] = {}
    limit = asyncio.Semaphore(100)

    async def first_visit(account: Account) -> None:
        async with limit:
            wire = await Wire.open(url, account.token)
            await wire.call([("sync", {"convs": []})])
            held[account.user_id] = max(seq for _, seq in wire.events)
            await wire.ws.close()

    await asyncio.gather(*(first_visit(a) for a in storm_users))
    # 2. The writers append the events the clients will miss.
    for n in range(config.missed):
        await asyncio.gather(
            *(
                wire.call(
                    [
                        (
                            "send",
                            {
                                "client_msg_id": f"storm-{conv}-{n}",
                                "conv": conv,
                                "text": f"missed event {n}",
                            },
                        )
                    ]
                )
                for wire, conv in writer_wires
            )
        )
    for wire, _ in writer_wires:
        await wire.ws.close()
    report.setup_seconds = time.monotonic() - started
    # 3. The storm.
    await asyncio.sleep(0.5)  # let the server settle (closed sockets, WAL)
    gate = asyncio.Event()
    wires: list[Wire] = []

    async def resume(account: Account) -> float:
        await gate.wait()
        t0 = time.monotonic()
        wire = await Wire.open(url, account.token)
        wires.append(wire)
        conv = conv_of[account.user_id]
        base = held[account.user_id]
        (ok,) = await wire.call([("sync", {"convs": [[conv, base]]})])
        took = time.monotonic() - t0
        want = [(conv, s) for s in range(base + 1, base + config.missed + 1)]
        report.events += len(wire.events)
        if ok.get("op") != "ok" or wire.events != want or wire.archived:
            report.wrong.append(f"user {account.user_id}: got {wire.events[:5]}… ({ok.get('op')})")
        else:
            report.resumed += 1
        return took

    tasks = [asyncio.ensure_future(resume(a)) for a in storm_users]
    await asyncio.sleep(0.2)  # every task is waiting at the gate
    cpu0, mine0 = cpu_seconds(server.pid), time.process_time()
    t0 = time.monotonic()
    gate.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    report.total_seconds = time.monotonic() - t0
    report.server_cpu = cpu_seconds(server.pid) - cpu0
    report.harness_cpu = time.process_time() - mine0
    report.max_rss_mb = server.max_rss_kb / 1024
    for r in results:
        if isinstance(r, BaseException):
            report.wrong.append(f"client failed: {type(r).__name__}: {r}")
        else:
            report.per_client.append(r)
    await asyncio.gather(*(w.ws.close() for w in wires), return_exceptions=True)
