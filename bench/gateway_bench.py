"""Gateway benchmark: chatd serve vs a bare Starlette broadcast server, same load, same run.

Run:  .venv/bin/python -m bench.gateway_bench            (full: about 2½ minutes)
      .venv/bin/python -m bench.gateway_bench --quick    (smoke: under a minute)
      … --scenarios latency --profile DIR                (py-spy samples of the servers)

Results and their analysis: docs/performance.md, section Gateway.

Three scenarios, each run first against a real ``chatd serve`` subprocess (fresh temporary
data directory, ``CHATD_SQLITE_SYNCHRONOUS=FULL``: every ack is after an fsynced commit) and
then against ``bench/ceiling_server.py`` (Starlette + uvicorn + uvloop, same WebSocket
protocol implementation, same msgpack frames, fan-out to the members of M rooms, no storage,
no auth).  Users, sessions and conversations are made *before* the server starts, through
chatd's own services on the same files (:mod:`bench.accounts`), so setup costs nothing to
the server under test.

1. **throughput** — N clients over N/S conversations of S members; each client keeps
   ``--window`` sends outstanding (sends the next one when an ack comes back).  Reported:
   deliveries/s (event pushes received by all members, the sender included) and acked
   messages/s, over a measurement window after a warm-up.
2. **latency** — N clients over N/S conversations, an offered open-loop rate (messages sent
   on a fixed schedule whatever the acks); p50/p99 of send→deliver measured on one monotonic
   clock: every conversation's members live in the same load process, so the time a message
   was written and the time each member (the sender included) received its push are read in
   the same process.
3. **idle** — K authenticated, synced, idle connections (each user a member of one
   conversation); server RSS (``/proc/PID/status`` VmRSS) before and after, per connection.

The load generator runs in separate processes (``multiprocessing``, spawn) with uvloop and
the ``websockets`` Sans-I/O client protocol driven from an ``asyncio.Protocol`` (no task per
connection, so that the generator is as cheap as it can be and the ceiling is the server's,
not the client's).  On a machine with 2 CPUs or more the server is pinned to CPU 0 and the
load to CPU 1.  Everything is bounded in count and time and stops by itself; the server and
workers are always stopped.  Each scenario checks its own accounting: after sending stops,
every acked message must reach every member exactly once (deliveries = acked × members).

The load generator also drives several nodes (:mod:`bench.cluster_bench`): a client spec
names the node it connects to, and a push to a device on another node than the sender's is
timed apart (``remote_deliver_ms``).  Each (message, device) pair is tracked, so a push
repeated to one device and missing on another shows as one duplicate and one missing.

The machine may be a shared VM: the run reports timer jitter, hypervisor steal and the CPU
other processes used during each window, waits (bounded) for quiet before each window, and
flags a window that was disturbed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import gc
import json
import multiprocessing
import multiprocessing.connection
import os
import platform
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast

import msgpack
import uvloop
from websockets.client import ClientProtocol
from websockets.frames import Close, Frame, Opcode
from websockets.http11 import Response
from websockets.uri import parse_uri

from bench.accounts import create_accounts, setup_process
from chatd.core.conversations import CreateConversation
from chatd.core.records import UserProfile

REPO = Path(__file__).resolve().parents[1]
TERMS = "bench-terms-1"
# A typical short clinical message (~90 characters after the message number).
PAD = "Patient vu ce matin, plaie propre, pansement refait. Merci de rappeler demain svp."
SERVER_START_TIMEOUT = 60.0
CONNECT_TIMEOUT = 30.0
PIPE_TIMEOUT = 300.0  # the longest a worker may take to answer one command
TARGETS = ("chatd", "ceiling")
FOREIGN_CPU_WARNING = 15.0  # % of a CPU used by other processes that makes a run suspect
CHUNK = 1 << 16  # messages per chunk of the load's ledger


def pack(obj: Any) -> bytes:
    data: bytes = msgpack.packb(obj, use_bin_type=True)
    return data


# =============================================================================== load side


@dataclass(frozen=True, slots=True)
class ClientSpec:
    user: int
    token: str
    convs: tuple[tuple[int, int], ...]  # (conv, last seq held) for sync
    send_conv: int | None  # the conversation this client posts into
    node: int = 0  # the server it connects to, among a plan's ``node_urls`` (several nodes)


@dataclass(frozen=True, slots=True)
class LoadPlan:
    mode: str  # "closed" (throughput), "open" (latency), "idle"
    url: str
    clients: tuple[ClientSpec, ...]
    conv_members: dict[int, int]  # conv → member count, for the accounting
    warmup: float = 1.0
    duration: float = 10.0
    window: int = 1  # closed loop: sends outstanding per client
    rate: float = 0.0  # open loop: messages/s offered by this worker
    drain_timeout: float = 10.0
    connect_concurrency: int = 100
    node_urls: tuple[str, ...] = ()  # several nodes: client ``node`` connects to its URL

    def url_of(self, spec: ClientSpec) -> str:
        return self.node_urls[spec.node] if self.node_urls else self.url


@dataclass(slots=True)
class LoadResult:
    connected: int = 0
    connect_failures: int = 0
    connect_seconds: float = 0.0
    sent: int = 0
    acked: int = 0
    errors: dict[str, int] = field(default_factory=dict)  # error replies by code
    deliveries: int = 0
    expected_deliveries: int = 0  # Σ members of the conversation over acked messages
    stray_deliveries: int = 0  # message events this run did not send
    duplicate_deliveries: int = 0
    window_seconds: float = 0.0
    window_sent: int = 0
    window_acked: int = 0
    window_deliveries: int = 0
    window_cpu_seconds: float = 0.0  # this worker's CPU time during the window
    drained: bool = True
    max_send_lag_ms: float = 0.0  # open loop: how late the generator wrote a message
    deliver_ms: list[float] = field(default_factory=list)  # send→push, messages sent in window
    # The same, for pushes to a device on another node than the sender's (several nodes);
    # deliver_ms then holds the pushes on the sender's node.
    remote_deliver_ms: list[float] = field(default_factory=list)
    ack_ms: list[float] = field(default_factory=list)  # send→ack, messages sent in window
    closes: dict[int, int] = field(default_factory=dict)  # unexpected close codes seen

    def merge(self, other: LoadResult) -> None:
        for name in (
            "connected",
            "connect_failures",
            "sent",
            "acked",
            "deliveries",
            "expected_deliveries",
            "stray_deliveries",
            "duplicate_deliveries",
            "window_sent",
            "window_acked",
            "window_deliveries",
            "window_cpu_seconds",
        ):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.connect_seconds = max(self.connect_seconds, other.connect_seconds)
        self.window_seconds = max(self.window_seconds, other.window_seconds)
        self.drained = self.drained and other.drained
        self.max_send_lag_ms = max(self.max_send_lag_ms, other.max_send_lag_ms)
        self.deliver_ms.extend(other.deliver_ms)
        self.remote_deliver_ms.extend(other.remote_deliver_ms)
        self.ack_ms.extend(other.ack_ms)
        for code, count in other.errors.items():
            self.errors[code] = self.errors.get(code, 0) + count
        for close, count in other.closes.items():
            self.closes[close] = self.closes.get(close, 0) + count

    @property
    def missing_deliveries(self) -> int:
        """(acked message, member device) pairs never delivered: each pair is counted once
        (a second push of a message to one device is a duplicate, not a delivery)."""
        return max(0, self.expected_deliveries - (self.deliveries - self.duplicate_deliveries))


class Load:
    """One worker's clients, clock and counters."""

    def __init__(self, plan: LoadPlan) -> None:
        self.plan = plan
        self.result = LoadResult()
        self.clients: list[BenchClient] = []
        self.running = False  # senders may send
        self.measuring = False
        self.window_start = 0.0
        self.window_end = 0.0
        # Per message, numbered from 0 in this worker (the number leads the text): send
        # time, conversation, sender's node, the devices it reached (a bit per device's slot
        # in its conversation).  Fixed-size chunks, so that recording never pauses to resize
        # a large table while frames are being timestamped.
        self.sent_at: list[list[float]] = []
        self.conv_of: list[list[int]] = []
        self.node_of: list[list[int]] = []
        self.delivered: list[list[int]] = []
        self.count = 0
        # Each client's bit in ``delivered``: its rank among its conversation's clients (all
        # of a conversation's clients are in one worker).
        self.slots: list[int] = []
        ranks: dict[int, int] = {}
        for spec in plan.clients:
            conv = spec.convs[0][0] if spec.convs else 0
            self.slots.append(ranks.get(conv, 0))
            ranks[conv] = self.slots[-1] + 1

    # ------------------------------------------------------------------ callbacks

    def on_sent(self, conv: int, now: float, node: int = 0) -> int:
        number = self.count
        chunk, slot = divmod(number, CHUNK)
        if chunk == len(self.sent_at):
            self.sent_at.append([0.0] * CHUNK)
            self.conv_of.append([0] * CHUNK)
            self.node_of.append([0] * CHUNK)
            self.delivered.append([0] * CHUNK)
        self.sent_at[chunk][slot] = now
        self.conv_of[chunk][slot] = conv
        self.node_of[chunk][slot] = node
        self.count += 1
        self.result.sent += 1
        if self.measuring:
            self.result.window_sent += 1
        return number

    def on_ack(self, number: int, now: float) -> None:
        chunk, slot = divmod(number, CHUNK)
        sent_at = self.sent_at[chunk][slot]
        self.result.acked += 1
        self.result.expected_deliveries += self.plan.conv_members[self.conv_of[chunk][slot]]
        if self.measuring:
            self.result.window_acked += 1
        if self.window_start <= sent_at < self.window_end:
            self.result.ack_ms.append((now - sent_at) * 1000)

    def on_error(self, number: int, code: str) -> None:
        self.result.errors[code] = self.result.errors.get(code, 0) + 1

    def on_delivery(self, text: str, now: float, client: BenchClient) -> None:
        head = text.split(" ", 1)[0]
        number = int(head) if head.isdigit() else -1
        if not 0 <= number < self.count:
            self.result.stray_deliveries += 1
            return
        chunk, slot = divmod(number, CHUNK)
        sent_at = self.sent_at[chunk][slot]
        device = 1 << self.slots[client.index]
        if self.delivered[chunk][slot] & device:
            self.result.duplicate_deliveries += 1
        self.delivered[chunk][slot] |= device
        self.result.deliveries += 1
        if self.measuring:
            self.result.window_deliveries += 1
        if self.window_start <= sent_at < self.window_end:
            latency = (now - sent_at) * 1000
            if client.spec.node == self.node_of[chunk][slot]:
                self.result.deliver_ms.append(latency)
            else:
                self.result.remote_deliver_ms.append(latency)

    def on_close(self, code: int) -> None:
        self.result.closes[code] = self.result.closes.get(code, 0) + 1

    # ------------------------------------------------------------------ phases

    async def connect_all(self) -> None:
        loop = asyncio.get_running_loop()
        limit = asyncio.Semaphore(self.plan.connect_concurrency)
        started = time.monotonic()

        async def one(index: int, spec: ClientSpec) -> None:
            async with limit:
                client = None
                try:
                    async with asyncio.timeout(CONNECT_TIMEOUT):
                        host, port = _host_port(self.plan.url_of(spec))
                        _, client = await loop.create_connection(
                            lambda: BenchClient(self, index, spec), host, port
                        )
                        await client.opened
                        await client.request({"op": "auth", "token": spec.token}, "hello")
                        convs = [list(c) for c in spec.convs]
                        await client.request({"op": "sync", "convs": convs})
                except (OSError, TimeoutError, ConnectionError):
                    self.result.connect_failures += 1
                    if client is not None:
                        client.abort()
                    return
                self.clients.append(client)

        await asyncio.gather(*(one(i, spec) for i, spec in enumerate(self.plan.clients)))
        self.result.connected = len(self.clients)
        self.result.connect_seconds = time.monotonic() - started

    async def run(self, go_at: float) -> None:
        """Send from ``go_at`` (a monotonic time shared with the parent) for warm-up +
        duration, then drain."""
        plan = self.plan
        self.window_start = go_at + plan.warmup
        self.window_end = self.window_start + plan.duration
        senders = [c for c in self.clients if c.spec.send_conv is not None]
        await _sleep_until(go_at)
        self.running = True
        sender_task = None
        if plan.mode == "closed":
            for client in senders:
                for _ in range(plan.window):
                    client.send_message()
        elif plan.mode == "open" and senders and plan.rate > 0:
            sender_task = asyncio.create_task(self._open_loop(senders, go_at))
        await _sleep_until(self.window_start)
        self.measuring = True
        cpu0 = time.process_time()
        await _sleep_until(self.window_end)
        self.measuring = False
        self.running = False
        self.result.window_cpu_seconds = time.process_time() - cpu0
        self.result.window_seconds = plan.duration
        if sender_task is not None:
            await sender_task
        # Drain: every message sent is answered, every acked message fully delivered.
        deadline = time.monotonic() + plan.drain_timeout
        r = self.result
        while time.monotonic() < deadline:
            answered = r.acked + sum(r.errors.values())
            if answered >= r.sent and r.deliveries >= r.expected_deliveries:
                break
            await asyncio.sleep(0.02)
        else:
            r.drained = False

    async def _open_loop(self, senders: list[BenchClient], go_at: float) -> None:
        total = int(self.plan.rate * (self.plan.warmup + self.plan.duration))
        interval = 1.0 / self.plan.rate
        j = 0
        while j < total:  # every scheduled message is sent, late if the generator lagged
            now = time.monotonic()
            while j < total and go_at + j * interval <= now:
                lag = (now - (go_at + j * interval)) * 1000
                self.result.max_send_lag_ms = max(self.result.max_send_lag_ms, lag)
                senders[j % len(senders)].send_message()
                j += 1
            if j < total:
                await asyncio.sleep(max(0.0, go_at + j * interval - time.monotonic()))

    async def close_all(self) -> None:
        for client in self.clients:
            client.close()
        await asyncio.sleep(0.2)  # let the close frames leave
        for client in self.clients:
            client.abort()


class BenchClient(asyncio.Protocol):
    """A chatd protocol client on the websockets Sans-I/O protocol, callbacks only."""

    def __init__(self, load: Load, index: int, spec: ClientSpec) -> None:
        self.load = load
        self.index = index
        self.spec = spec
        self.ws = ClientProtocol(parse_uri(load.plan.url_of(spec)), max_size=16 * 1024 * 1024)
        self.transport: asyncio.Transport | None = None
        loop = asyncio.get_running_loop()
        self.opened: asyncio.Future[None] = loop.create_future()
        self.replies: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.inflight: dict[int, int] = {}  # rid of a send → its message number
        self.rid = 0
        self.closing = False

    # ------------------------------------------------------------------ asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.ws.send_request(self.ws.connect())
        self._flush()

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()
        self.ws.receive_data(data)
        for event in self.ws.events_received():
            if isinstance(event, Frame):
                if event.opcode is Opcode.BINARY:
                    self._on_message(event.data, now)
                elif event.opcode is Opcode.CLOSE and not self.closing:
                    # The frame's own code: ``ws.close_code`` is only set once closed.
                    self.load.on_close(Close.parse(event.data).code if event.data else 1005)
            elif isinstance(event, Response) and not self.opened.done():
                if self.ws.handshake_exc is not None:
                    self.opened.set_exception(ConnectionError("handshake refused"))
                else:
                    self.opened.set_result(None)
        self._flush()

    def eof_received(self) -> bool | None:
        self.ws.receive_eof()
        self._flush()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        failure = ConnectionError("connection lost")
        if not self.opened.done():
            self.opened.set_exception(failure)
        for future in self.replies.values():
            if not future.done():
                future.set_exception(failure)
        self.replies.clear()
        if not self.closing and self.ws.close_rcvd is None:
            self.load.on_close(1006)

    def _flush(self) -> None:
        if self.transport is None:
            return
        for data in self.ws.data_to_send():
            if data:
                self.transport.write(data)
            elif self.transport.can_write_eof():
                self.transport.write_eof()

    # ------------------------------------------------------------------ frames

    def _on_message(self, data: bytes | bytearray | memoryview, now: float) -> None:
        msg = msgpack.unpackb(data, raw=False)
        op = msg["op"]
        if op == "event":
            if msg["kind"] == "message":
                self.load.on_delivery(msg["text"], now, self)
            return
        rid = msg.get("rid")
        number = self.inflight.pop(rid, None)
        if number is not None:
            if op == "ok":
                self.load.on_ack(number, now)
            else:
                self.load.on_error(number, str(msg.get("code")))
            if self.load.running and self.load.plan.mode == "closed":
                self.send_message()
            return
        future = self.replies.pop(rid, None)
        if future is not None and not future.done():
            future.set_result(msg)

    def _write(self, obj: dict[str, Any]) -> int:
        self.rid += 1
        obj["rid"] = self.rid
        self.ws.send_binary(pack(obj))
        self._flush()
        return self.rid

    async def request(self, obj: dict[str, Any], expect: str = "ok") -> dict[str, Any]:
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.replies[self._write(obj)] = future
        reply = await future
        if reply["op"] != expect:
            raise ConnectionError(f"{obj['op']} answered {reply.get('code', reply['op'])}")
        return reply

    def send_message(self) -> None:
        conv = self.spec.send_conv
        if conv is None or self.transport is None or self.transport.is_closing():
            return
        number = self.load.on_sent(conv, time.monotonic(), self.spec.node)
        rid = self._write(
            {"op": "send", "client_msg_id": f"b{number}", "conv": conv, "text": f"{number} {PAD}"}
        )
        self.inflight[rid] = number

    def close(self) -> None:
        self.closing = True
        if self.transport is not None and not self.transport.is_closing():
            with contextlib.suppress(Exception):
                self.ws.send_close(1000)
                self._flush()

    def abort(self) -> None:
        self.closing = True
        if self.transport is not None:
            self.transport.close()


def _host_port(url: str) -> tuple[str, int]:
    netloc = url.split("//", 1)[1].split("/", 1)[0]
    host, port = netloc.rsplit(":", 1)
    return host, int(port)


async def _sleep_until(when: float) -> None:
    delay = when - time.monotonic()
    if delay > 0:
        await asyncio.sleep(delay)


def raise_nofile(wanted: int) -> int:
    """Raise RLIMIT_NOFILE to at least ``wanted`` if we can (the hard limit too when
    privileged); return the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= wanted:
        return soft
    for new_soft, new_hard in ((wanted, max(hard, wanted)), (min(wanted, hard), hard)):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (new_soft, new_hard))
            return new_soft
        except (ValueError, OSError):
            continue
    return soft


def _pin(cpu: int | None) -> None:
    if cpu is not None and hasattr(os, "sched_setaffinity"):
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, {cpu})


def worker_main(conn: multiprocessing.connection.Connection, cpu: int | None) -> None:
    """A load process: commands from the parent over ``conn``, one reply each."""
    _pin(cpu)
    uvloop.run(_worker(conn))


async def _recv(conn: multiprocessing.connection.Connection) -> Any:
    ready = await asyncio.to_thread(conn.poll, PIPE_TIMEOUT)
    if not ready:
        raise TimeoutError("the parent sent nothing")
    return conn.recv()


async def _worker(conn: multiprocessing.connection.Connection) -> None:
    command, plan = await _recv(conn)
    assert command == "connect", command
    raise_nofile(len(plan.clients) + 256)
    load = Load(plan)
    try:
        await load.connect_all()
        r = load.result
        conn.send(("ready", r.connected, r.connect_failures, r.connect_seconds))
        while True:
            command, arg = await _recv(conn)
            if command == "go":
                # No collector pauses in the load process while it timestamps frames: what
                # it allocates during a run is bounded and acyclic, and freed at exit.
                gc.collect()
                gc.freeze()
                gc.disable()
                try:
                    await load.run(arg)
                finally:
                    gc.enable()
                conn.send(("done", load.result))
            elif command == "close":
                break
    finally:
        await load.close_all()
        conn.send(("closed", None))


# =============================================================================== servers


@dataclass
class Server:
    name: str
    proc: subprocess.Popen[bytes]
    url: str  # http://host:port
    log_path: Path

    @property
    def ws_url(self) -> str:
        return self.url.replace("http", "ws", 1) + "/v1/ws"

    def rss_kib(self) -> int:
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
        assert match is not None
        return int(match.group(1))

    def cpu_seconds(self) -> float:
        """User + system CPU time of the whole process (all its threads)."""
        stat = Path(f"/proc/{self.proc.pid}/stat").read_text()
        fields = stat.rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> list[str]:
        """SIGTERM, wait; return the problems found (exit code, errors in the log)."""
        problems = []
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
                problems.append(f"{self.name} did not stop on SIGTERM")
        if self.proc.returncode not in (0, -signal.SIGTERM):
            problems.append(f"{self.name} exited with {self.proc.returncode}")
        log = self.log()
        if "internal error" in log or "Traceback" in log:
            problems.append(f"{self.name} logged errors (see {self.log_path})")
        return problems


def cpu_ticks() -> dict[str, tuple[int, int, int]]:
    """Per CPU, from /proc/stat: (steal, busy, all) ticks.  Steal is time the hypervisor ran
    something else while this virtual CPU wanted to run; busy excludes idle and iowait."""
    out = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/stat").read_text().splitlines():
            name, *values = line.split()
            if re.fullmatch(r"cpu\d+", name):
                ticks = [int(v) for v in values[:8]] + [0] * (8 - len(values[:8]))
                total = sum(ticks)
                out[name] = (ticks[7], total - ticks[3] - ticks[4], total)
    return out


def wait_until_quiet(max_wait: float, threshold: float = FOREIGN_CPU_WARNING) -> float:
    """Wait (at most ``max_wait`` s) until the machine is quiet: less than ``threshold`` % of
    a CPU busy over one second.  Returns the last busy figure.  On a shared machine this keeps
    another job's burst out of a measurement window (each window also checks afterwards)."""
    deadline = time.monotonic() + max_wait
    while True:
        before = cpu_ticks()
        time.sleep(1.0)
        after = cpu_ticks()
        busy = sum(after[c][1] - before[c][1] for c in after if c in before)
        percent = 100 * busy / os.sysconf("SC_CLK_TCK")
        if percent < threshold or time.monotonic() >= deadline:
            return percent


def timer_jitter(samples: int = 1000) -> tuple[float, float]:
    """How late a 1 ms sleep wakes up on this machine, idle: (p99, max) in ms.  The floor
    under any latency percentile measured here (virtual CPUs can be descheduled)."""
    late = []
    for _ in range(samples):
        started = time.monotonic()
        time.sleep(0.001)
        late.append((time.monotonic() - started - 0.001) * 1000)
    return percentile(late, 99), max(late)


def _server_preexec(cpu: int | None, nofile: int) -> Callable[[], None]:
    def preexec() -> None:
        _pin(cpu)
        raise_nofile(nofile)

    return preexec


def start_server(
    name: str,
    argv: list[str],
    env: dict[str, str],
    workdir: Path,
    *,
    cpu: int | None,
    nofile: int,
) -> Server:
    log_path = workdir / f"{name}.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=workdir,
            preexec_fn=_server_preexec(cpu, nofile),
        )
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    pattern = re.compile(r"listening on (http://\S+)")
    url = None
    while url is None:
        match = pattern.search(log_path.read_text(errors="replace"))
        if match:
            url = match.group(1)
        elif proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"{name} did not start:\n{log_path.read_text()}")
        else:
            time.sleep(0.05)
    server = Server(name, proc, url, log_path)
    while True:
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=2) as answer:
                if answer.status == 200:
                    return server
        except OSError:
            pass
        if time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(f"{name} never became healthy:\n{server.log()}")
        time.sleep(0.05)


def chatd_env(data_dir: Path, extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHATD_")}
    env.update(
        {
            "CHATD_DATA_DIR": str(data_dir),
            "CHATD_HOST": "127.0.0.1",
            "CHATD_PORT": "0",
            "CHATD_TERMS_VERSION": TERMS,
            "CHATD_SQLITE_SYNCHRONOUS": "FULL",  # the default, spelled out
            **extra,
        }
    )
    return env


# =============================================================================== worlds


@dataclass(frozen=True)
class World:
    """Who connects, to what: client specs and conversation sizes."""

    clients: tuple[ClientSpec, ...]
    conv_members: dict[int, int]
    setup_seconds: float


def _groups(users: int, conv_size: int) -> list[list[int]]:
    """User indexes 0..users-1 in consecutive groups of ``conv_size`` (the last may be
    smaller, never below 2 members)."""
    groups = [list(range(i, min(i + conv_size, users))) for i in range(0, users, conv_size)]
    if len(groups) > 1 and len(groups[-1]) < 2:
        groups[-2].extend(groups.pop())
    return groups


def ceiling_world(users: int, conv_size: int, *, senders: bool) -> World:
    clients = []
    conv_members = {}
    for room, group in enumerate(_groups(users, conv_size), start=1):
        conv_members[room] = len(group)
        for index in group:
            user = index + 1
            clients.append(ClientSpec(user, str(user), ((room, 0),), room if senders else None))
    return World(tuple(clients), conv_members, 0.0)


async def _populate_chatd(
    data_dir: Path, users: int, conv_size: int, senders: bool, database_url: str | None
) -> World:
    started = time.monotonic()
    # Setup only, through chatd's own services: the server under test reopens these files
    # with synchronous=FULL (or the PostgreSQL database, already migrated).
    async with setup_process(data_dir, TERMS, database_url=database_url) as process:
        accounts = await create_accounts(
            process,
            [f"bench{i}" for i in range(users)],
            UserProfile("Bench", "User", "Infirmière", "CH Bench"),
        )
        clients: list[ClientSpec] = []
        conv_members: dict[int, int] = {}
        for n, group in enumerate(_groups(users, conv_size)):
            members = [accounts[i].user_id for i in group]
            result = await process.services.messaging.apply(
                CreateConversation(members[0], tuple(members[1:]), f"Bench {n}", f"bench-{n}")
            )
            conv = result.conv_id
            conv_members[conv] = len(group)
            for i in group:
                clients.append(
                    ClientSpec(
                        accounts[i].user_id,
                        accounts[i].token,
                        ((conv, result.last_seq),),
                        conv if senders else None,
                    )
                )
    return World(tuple(clients), conv_members, time.monotonic() - started)


def chatd_world(
    data_dir: Path, users: int, conv_size: int, *, senders: bool, database_url: str | None = None
) -> World:
    data_dir.mkdir(parents=True, exist_ok=True)
    return asyncio.run(_populate_chatd(data_dir, users, conv_size, senders, database_url))


# =============================================================================== scenarios


@dataclass(frozen=True)
class Placement:
    """Where and when load runs: the server on one CPU, the load on another (when there are
    2 or more), each measurement window started once the machine is quiet (waiting at most
    ``quiet_wait`` seconds)."""

    server_cpu: int | None
    load_cpu: int | None
    quiet_wait: float = 0.0

    @classmethod
    def detect(cls, quiet_wait: float = 0.0) -> Placement:
        cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
        if len(cpus) >= 2:
            return cls(cpus[0], cpus[1], quiet_wait)
        return cls(None, None, quiet_wait)


@dataclass
class RunResult:
    """One scenario against one target."""

    target: str
    scenario: str
    load: LoadResult
    server_cpu_percent: float = 0.0
    load_cpu_percent: float = 0.0
    steal_percent: float = 0.0  # the most CPU time stolen by the hypervisor on one CPU
    foreign_cpu_percent: float = 0.0  # CPU used by other processes during the window
    setup_seconds: float = 0.0
    rss_before_kib: int = 0
    rss_after_kib: int = 0
    idle_connections: int = 0
    problems: list[str] = field(default_factory=list)  # the run is wrong
    warnings: list[str] = field(default_factory=list)  # the run may be disturbed

    @property
    def deliveries_per_s(self) -> float:
        return self.load.window_deliveries / max(self.load.window_seconds, 1e-9)

    @property
    def acked_per_s(self) -> float:
        return self.load.window_acked / max(self.load.window_seconds, 1e-9)

    @property
    def sent_per_s(self) -> float:
        return self.load.window_sent / max(self.load.window_seconds, 1e-9)

    @property
    def kib_per_connection(self) -> float:
        return (self.rss_after_kib - self.rss_before_kib) / max(self.idle_connections, 1)

    @property
    def accounting_ok(self) -> bool:
        r = self.load
        return (
            r.drained
            and r.deliveries == r.expected_deliveries
            and r.sent == r.acked + sum(r.errors.values())
            and r.stray_deliveries == 0
            and r.duplicate_deliveries == 0
        )


class Workers:
    """The load processes of one scenario run; always stopped on exit."""

    def __init__(self, plans: list[LoadPlan], cpu: int | None) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.pipes: list[multiprocessing.connection.Connection] = []
        self.procs: list[Any] = []
        for _ in plans:
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=worker_main, args=(child, cpu), daemon=True)
            proc.start()
            child.close()
            self.pipes.append(parent)
            self.procs.append(proc)
        for pipe, plan in zip(self.pipes, plans, strict=True):
            pipe.send(("connect", plan))

    def _answer(self, pipe: multiprocessing.connection.Connection, timeout: float) -> Any:
        if not pipe.poll(timeout):
            raise TimeoutError("a load worker did not answer in time")
        return pipe.recv()

    def ready(self, timeout: float) -> tuple[int, int, float]:
        """(connected, failed, seconds the slowest worker took to connect its clients)."""
        connected = failed = 0
        seconds = 0.0
        for pipe in self.pipes:
            tag, ok, bad, took = self._answer(pipe, timeout)
            assert tag == "ready", tag
            connected += ok
            failed += bad
            seconds = max(seconds, took)
        return connected, failed, seconds

    def go(self, go_at: float) -> None:
        for pipe in self.pipes:
            pipe.send(("go", go_at))

    def results(self, timeout: float) -> LoadResult:
        total = LoadResult()
        for pipe in self.pipes:
            tag, result = self._answer(pipe, timeout)
            assert tag == "done", tag
            total.merge(result)
        return total

    def close(self) -> None:
        for pipe in self.pipes:
            with contextlib.suppress(OSError, BrokenPipeError):
                pipe.send(("close", None))
        for pipe in self.pipes:
            with contextlib.suppress(OSError, EOFError, TimeoutError):
                self._answer(pipe, 30)
        for proc in self.procs:
            proc.join(10)
            if proc.is_alive():
                proc.kill()
                proc.join(5)


def _split(world: World, procs: int) -> list[list[ClientSpec]]:
    """Whole conversations per worker (so a message's sender and receivers share a clock)."""
    by_conv: dict[int, list[ClientSpec]] = {}
    for spec in world.clients:
        by_conv.setdefault(spec.convs[0][0], []).append(spec)
    parts: list[list[ClientSpec]] = [[] for _ in range(max(1, min(procs, len(by_conv))))]
    for n, specs in enumerate(by_conv.values()):
        parts[n % len(parts)].extend(specs)
    return parts


@contextlib.contextmanager
def _target(
    target: str,
    workdir: Path,
    users: int,
    conv_size: int,
    *,
    senders: bool,
    placement: Placement,
    chatd_extra: dict[str, str] | None = None,
) -> Iterator[tuple[Server, World, list[str]]]:
    """A fresh server of ``target`` with its world of users; stopped on exit, when the
    problems found then (exit code, errors in its log) are added to the yielded list."""
    rundir = Path(tempfile.mkdtemp(prefix=f"{target}-", dir=workdir))
    nofile = users + 4096
    if target == "chatd":
        world = chatd_world(rundir / "var", users, conv_size, senders=senders)
        server = start_server(
            "chatd",
            [sys.executable, "-m", "chatd", "serve"],
            chatd_env(rundir / "var", chatd_extra or {}),
            rundir,
            cpu=placement.server_cpu,
            nofile=nofile,
        )
    elif target == "ceiling":
        world = ceiling_world(users, conv_size, senders=senders)
        # The server runs in its own directory: the repository goes on its import path.
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, (str(REPO), os.environ.get("PYTHONPATH")))),
        }
        server = start_server(
            "ceiling",
            [sys.executable, "-m", "bench.ceiling_server", "--port", "0"],
            env,
            rundir,
            cpu=placement.server_cpu,
            nofile=nofile,
        )
    else:
        raise ValueError(target)
    problems: list[str] = []
    try:
        yield server, world, problems
    finally:
        problems.extend(server.stop())
        if not problems:  # otherwise kept, with the server's log, for a look
            shutil.rmtree(rundir, ignore_errors=True)


def load_run(
    target: str,
    scenario: str,
    servers: Sequence[Server],
    world: World,
    plan_args: dict[str, Any],
    *,
    procs: int,
    placement: Placement,
    profile: Path | None = None,
    backing_cpu: Callable[[], float] | None = None,
) -> RunResult:
    """Open or closed loop against ``servers`` (several nodes: each client connects to the
    one its spec names).  ``backing_cpu``: the CPU seconds so far of the processes behind them
    (a database, a broker), counted with the servers' CPU rather than as other processes'."""

    def server_cpu() -> float:
        return sum(s.cpu_seconds() for s in servers) + (backing_cpu() if backing_cpu else 0.0)

    parts = _split(world, procs)
    total_clients = len(world.clients)
    plans = []
    for specs in parts:
        args = dict(plan_args)
        if args.get("rate"):
            args["rate"] = args["rate"] * len(specs) / total_clients
        plans.append(
            LoadPlan(
                url=servers[0].ws_url,
                clients=tuple(specs),
                conv_members=world.conv_members,
                node_urls=tuple(s.ws_url for s in servers) if len(servers) > 1 else (),
                **args,
            )
        )
    warmup, duration = plans[0].warmup, plans[0].duration
    workers = Workers(plans, placement.load_cpu)
    spy = None
    try:
        connected, failed, _ = workers.ready(PIPE_TIMEOUT)
        if placement.quiet_wait:
            wait_until_quiet(placement.quiet_wait)
        go_at = time.monotonic() + 0.5
        workers.go(go_at)
        time.sleep(max(0.0, go_at + warmup - time.monotonic()))
        cpu0 = server_cpu()
        ticks0 = cpu_ticks()
        spy = _py_spy(servers[0], profile, f"{scenario}-{target}", duration)
        time.sleep(max(0.0, go_at + warmup + duration - time.monotonic()))
        cpu1 = server_cpu()
        ticks1 = cpu_ticks()
        load = workers.results(warmup + duration + plans[0].drain_timeout + 60)
    finally:
        workers.close()
        if spy is not None:
            try:
                spy.wait(30)
            except subprocess.TimeoutExpired:
                spy.kill()
    result = RunResult(target, scenario, load, setup_seconds=world.setup_seconds)
    result.server_cpu_percent = 100 * (cpu1 - cpu0) / duration
    result.load_cpu_percent = 100 * load.window_cpu_seconds / duration
    cpus = [cpu for cpu in ticks1 if cpu in ticks0]
    result.steal_percent = max(
        (100 * (ticks1[c][0] - ticks0[c][0]) / max(ticks1[c][2] - ticks0[c][2], 1) for c in cpus),
        default=0.0,
    )
    busy = sum(ticks1[c][1] - ticks0[c][1] for c in cpus) / os.sysconf("SC_CLK_TCK")
    result.foreign_cpu_percent = max(
        0.0, 100 * busy / duration - result.server_cpu_percent - result.load_cpu_percent
    )
    if result.foreign_cpu_percent > FOREIGN_CPU_WARNING:
        result.warnings.append(
            f"other processes used {result.foreign_cpu_percent:.0f} % of a CPU during the "
            "window: the figures are disturbed"
        )
    if failed:
        result.problems.append(f"{failed} of {connected + failed} clients failed to connect")
    if not result.accounting_ok:
        result.problems.append(
            f"accounting: sent {load.sent}, acked {load.acked}, errors {load.errors}, "
            f"deliveries {load.deliveries} of {load.expected_deliveries} expected, "
            f"stray {load.stray_deliveries}, duplicates {load.duplicate_deliveries}, "
            f"drained {load.drained}, closes {load.closes}"
        )
    return result


def _py_spy(
    server: Server, profile: Path | None, name: str, duration: float
) -> subprocess.Popen[bytes] | None:
    """With ``--profile DIR``: sample the server with py-spy during the window (collapsed
    stacks in DIR/NAME.txt; ``pip install py-spy`` first)."""
    if profile is None:
        return None
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    profile.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [
            spy,
            "record",
            "--pid",
            str(server.proc.pid),
            "--duration",
            str(max(1, int(duration))),
            "--rate",
            "200",
            "--format",
            "raw",
            "--output",
            str(profile / f"{name}.txt"),
            "--threads",
            "--nonblocking",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def run_throughput(
    target: str,
    workdir: Path,
    *,
    clients: int = 100,
    conv_size: int = 10,
    warmup: float = 2.0,
    duration: float = 15.0,
    window: int = 1,
    procs: int = 1,
    placement: Placement | None = None,
    profile: Path | None = None,
) -> RunResult:
    """Scenario 1: closed loop, ``window`` sends outstanding per client, as fast as acks
    come back.  chatd's per-connection rate limit is lifted (CHATD_WS_RATE/BURST) so that
    what is measured is capacity, not the limiter."""
    placement = placement or Placement.detect()
    extra = {"CHATD_WS_RATE": "1000000", "CHATD_WS_BURST": "1000000"}
    with _target(
        target, workdir, clients, conv_size, senders=True, placement=placement, chatd_extra=extra
    ) as (server, world, problems):
        result = load_run(
            target,
            "throughput",
            [server],
            world,
            {"mode": "closed", "warmup": warmup, "duration": duration, "window": window},
            procs=procs,
            placement=placement,
            profile=profile,
        )
    result.problems.extend(problems)
    return result


def run_latency(
    target: str,
    workdir: Path,
    *,
    clients: int = 1000,
    conv_size: int = 10,
    rate: float = 1000.0,
    warmup: float = 2.0,
    duration: float = 15.0,
    procs: int = 1,
    placement: Placement | None = None,
    profile: Path | None = None,
) -> RunResult:
    """Scenario 2: open loop at ``rate`` messages/s in total, spread evenly over the
    clients (1,000 clients at 1,000 msg/s: one message per client per second, within
    chatd's default per-connection rate limit, which is kept)."""
    placement = placement or Placement.detect()
    with _target(target, workdir, clients, conv_size, senders=True, placement=placement) as (
        server,
        world,
        problems,
    ):
        result = load_run(
            target,
            "latency",
            [server],
            world,
            {"mode": "open", "warmup": warmup, "duration": duration, "rate": rate},
            procs=procs,
            placement=placement,
            profile=profile,
        )
    result.problems.extend(problems)
    return result


def run_idle(
    target: str,
    workdir: Path,
    *,
    connections: int = 10_000,
    conv_size: int = 10,
    settle: float = 2.0,
    procs: int = 1,
    placement: Placement | None = None,
) -> RunResult:
    """Scenario 3: ``connections`` authenticated, synced, idle connections; server RSS per
    connection.  The 'before' RSS is taken after 100 connections were opened and closed,
    so that code paths and caches a first connection warms are not charged to the idle
    connections."""
    placement = placement or Placement.detect()
    warm = min(100, connections)
    with _target(
        target, workdir, connections + warm, conv_size, senders=False, placement=placement
    ) as (server, world, problems):
        warm_world = World(world.clients[-warm:], world.conv_members, 0.0)
        idle_world = World(world.clients[:-warm], world.conv_members, 0.0)
        warmers = Workers(
            [LoadPlan("idle", server.ws_url, warm_world.clients, world.conv_members)],
            placement.load_cpu,
        )
        try:
            warmers.ready(PIPE_TIMEOUT)
        finally:
            warmers.close()
        time.sleep(1.0)
        if placement.quiet_wait:
            wait_until_quiet(placement.quiet_wait)
        before = server.rss_kib()
        parts = _split(idle_world, procs)
        workers = Workers(
            [LoadPlan("idle", server.ws_url, tuple(specs), world.conv_members) for specs in parts],
            placement.load_cpu,
        )
        try:
            connected, failed, connect_seconds = workers.ready(PIPE_TIMEOUT)
            time.sleep(settle)
            after = server.rss_kib()
        finally:
            workers.close()
    load = LoadResult(connected=connected, connect_failures=failed, connect_seconds=connect_seconds)
    result = RunResult(target, "idle", load, setup_seconds=world.setup_seconds)
    result.rss_before_kib, result.rss_after_kib = before, after
    result.idle_connections = connected
    result.problems.extend(problems)
    if failed:
        result.problems.append(f"{failed} of {connected + failed} connections failed")
    return result


# =============================================================================== report


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def machine() -> str:
    mem_kib = 0
    with contextlib.suppress(OSError):
        match = re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text())
        mem_kib = int(match.group(1)) if match else 0
    model = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        match = re.search(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text())
        model = match.group(1).strip() if match else model
    return (
        f"{os.cpu_count()} CPUs ({model}), {mem_kib / 1024 / 1024:.1f} GiB RAM, "
        f"Linux {platform.release()}, Python {platform.python_version()}"
    )


def _fmt(value: float, unit: str = "", digits: int = 0) -> str:
    if value != value:  # NaN
        return "—"
    return f"{value:,.{digits}f}{unit}"


def _p50_p99(values: list[float]) -> str:
    return f"{_fmt(percentile(values, 50), '', 1)} / {_fmt(percentile(values, 99), '', 1)}"


def _cpu(result: RunResult) -> str:
    return f"{result.server_cpu_percent:.0f} % / {result.load_cpu_percent:.0f} %"


def _rates(r: RunResult) -> str:
    return f"{r.sent_per_s:,.0f} / {r.acked_per_s:,.0f} / {r.deliveries_per_s:,.0f}"


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.0%}" if b else "—"


def render(
    results: dict[str, dict[str, RunResult]],
    args: argparse.Namespace,
    command: str,
    placement: Placement,
    jitter: tuple[float, float],
) -> str:
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    pin = (
        f"server pinned to CPU {placement.server_cpu}, load to CPU {placement.load_cpu}"
        if placement.server_cpu is not None
        else "no CPU pinning (fewer than 2 CPUs)"
    )
    lines = [
        f"chatd gateway benchmark — {now}",
        f"command: {command}",
        f"machine: {machine()}",
        "chatd:   `chatd serve`, CHATD_SQLITE_SYNCHRONOUS=FULL (the default: ack after fsync)",
        "ceiling: bench/ceiling_server.py — Starlette + uvicorn (websockets-sansio) + uvloop,",
        "         same msgpack frames, fan-out to room members, no storage, no auth",
        f"load:    {args.procs} process(es), websockets Sans-I/O client on uvloop; {pin}",
        f"noise:   a 1 ms sleep on this machine, idle, wakes p99 {jitter[0]:.1f} ms / max "
        f"{jitter[1]:.1f} ms late",
    ]
    rows: list[tuple[str, ...]] = []
    head = ("measure", "chatd", "ceiling", "chatd/ceil", "goal")

    def add(measure: str, chatd: str, ceiling: str, ratio: str = "", goal: str = "") -> None:
        rows.append((measure, chatd, ceiling, ratio, goal))

    def section(title: str) -> None:
        rows.append((title,))

    if "throughput" in results:
        c, k = results["throughput"]["chatd"], results["throughput"]["ceiling"]
        ratio = c.deliveries_per_s / k.deliveries_per_s if k.deliveries_per_s else 0.0
        section(
            f"1 throughput: {args.clients} clients, {args.clients // args.conv_size} conv × "
            f"{args.conv_size}, {args.window} send(s) outstanding per client "
            f"(chatd rate limit lifted), {args.duration:g} s window"
        )
        add(
            "deliveries/s",
            _fmt(c.deliveries_per_s),
            _fmt(k.deliveries_per_s),
            _ratio(c.deliveries_per_s, k.deliveries_per_s),
            f"≥ 60 %: {'met' if ratio >= 0.60 else 'NOT met'}",
        )
        add(
            "acked messages/s",
            _fmt(c.acked_per_s),
            _fmt(k.acked_per_s),
            _ratio(c.acked_per_s, k.acked_per_s),
        )
        add("send→ack p50 / p99 ms", _p50_p99(c.load.ack_ms), _p50_p99(k.load.ack_ms))
        add("send→deliver p50 / p99 ms", _p50_p99(c.load.deliver_ms), _p50_p99(k.load.deliver_ms))
        add("server CPU / load CPU", _cpu(c), _cpu(k))
        add("VM steal / other processes' CPU", _noise(c), _noise(k))
        add(f"accounting: deliveries = acked × {args.conv_size}", _ok(c), _ok(k))
    if "latency" in results:
        c, k = results["latency"]["chatd"], results["latency"]["ceiling"]
        c99 = percentile(c.load.deliver_ms, 99)
        section(
            f"2 latency: {args.latency_clients} clients, "
            f"{args.latency_clients // args.conv_size} conv × {args.conv_size}, "
            f"{args.rate:,.0f} msg/s offered (open loop), {args.duration:g} s window"
        )
        add(
            "send→deliver p50 ms",
            _fmt(percentile(c.load.deliver_ms, 50), "", 1),
            _fmt(percentile(k.load.deliver_ms, 50), "", 1),
        )
        add(
            "send→deliver p99 ms",
            _fmt(c99, "", 1),
            _fmt(percentile(k.load.deliver_ms, 99), "", 1),
            "",
            f"≤ 25 ms: {'met' if c99 <= 25 else 'NOT met'}",
        )
        add(
            "send→deliver max ms",
            _fmt(max(c.load.deliver_ms, default=float("nan")), "", 1),
            _fmt(max(k.load.deliver_ms, default=float("nan")), "", 1),
        )
        add("send→ack p50 / p99 ms", _p50_p99(c.load.ack_ms), _p50_p99(k.load.ack_ms))
        add("sent / acked / delivered per s", _rates(c), _rates(k))
        add(
            "load: latest send, ms behind schedule",
            _fmt(c.load.max_send_lag_ms, "", 1),
            _fmt(k.load.max_send_lag_ms, "", 1),
        )
        add("server CPU / load CPU", _cpu(c), _cpu(k))
        add("VM steal / other processes' CPU", _noise(c), _noise(k))
        add(f"accounting: deliveries = acked × {args.conv_size}", _ok(c), _ok(k))
    if "idle" in results:
        c, k = results["idle"]["chatd"], results["idle"]["ceiling"]
        if c.kib_per_connection > 20:
            verdict = "NOT met"
        elif c.idle_connections < 10_000:
            verdict = f"met at {c.idle_connections:,} only"
        else:
            verdict = "met"
        section(f"3 idle: {args.idle:,} connections, each authenticated and synced")
        add("connections open", f"{c.idle_connections:,}", f"{k.idle_connections:,}")
        add("connect + auth + sync, per s", _connect_rate(c), _connect_rate(k))
        add(
            "server RSS before → after, MiB",
            f"{c.rss_before_kib / 1024:.1f} → {c.rss_after_kib / 1024:.1f}",
            f"{k.rss_before_kib / 1024:.1f} → {k.rss_after_kib / 1024:.1f}",
        )
        add(
            "RSS per idle connection, KiB",
            f"{c.kib_per_connection:.1f}",
            f"{k.kib_per_connection:.1f}",
            _ratio(c.kib_per_connection, k.kib_per_connection),
            f"≤ 20 KiB: {verdict}",
        )
    cells = [r for r in [head, *rows] if len(r) > 1]
    widths = [max(len(r[i]) for r in cells) for i in range(len(head))]

    def line(row: tuple[str, ...]) -> str:
        parts = [row[0].ljust(widths[0])]
        parts += [row[i].rjust(widths[i]) for i in (1, 2, 3)]
        parts.append(row[4].ljust(widths[4]))
        return "  ".join(parts).rstrip()

    lines += ["", line(head), "  ".join("-" * w for w in widths)]
    for row in rows:
        lines.append(row[0] if len(row) == 1 else line(row))
    notes = [
        f"{r.target} {r.scenario}: {p}"
        for per in results.values()
        for r in per.values()
        for p in [*r.problems, *r.warnings]
    ]
    if notes:
        lines.append("")
        lines.extend(f"! {note}" for note in notes)
    return "\n".join(lines)


def _connect_rate(result: RunResult) -> str:
    return _fmt(result.load.connected / max(result.load.connect_seconds, 1e-9))


def _noise(result: RunResult) -> str:
    return f"{result.steal_percent:.1f} % / {result.foreign_cpu_percent:.0f} %"


def _ok(result: RunResult) -> str:
    r = result.load
    return f"{'OK' if result.accounting_ok else 'MISMATCH'}, {r.deliveries:,}"


# =============================================================================== main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="smoke run, under a minute: small scales, 3 s windows"
    )
    parser.add_argument(
        "--scenarios",
        default="throughput,latency,idle",
        help="comma-separated subset of throughput,latency,idle",
    )
    parser.add_argument("--clients", type=int, default=100, help="scenario 1 clients")
    parser.add_argument(
        "--window", type=int, default=1, help="scenario 1: sends outstanding per client"
    )
    parser.add_argument("--latency-clients", type=int, default=1000, help="scenario 2 clients")
    parser.add_argument(
        "--rate", type=float, default=1000.0, help="scenario 2: offered messages/s in total"
    )
    parser.add_argument("--conv-size", type=int, default=10, help="members per conversation")
    parser.add_argument("--idle", type=int, default=10_000, help="scenario 3 connections")
    parser.add_argument(
        "--duration", type=float, default=15.0, help="measurement window per run, seconds"
    )
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds before measuring")
    parser.add_argument("--procs", type=int, default=1, help="load processes")
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=120.0,
        help="before each window, wait up to this many seconds for other "
        "processes to go quiet (a shared machine); 0: do not wait",
    )
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    parser.add_argument(
        "--profile",
        type=Path,
        help="sample the servers with py-spy during each load window; "
        "collapsed stacks written to this directory",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.clients = min(args.clients, 20)
        args.latency_clients = min(args.latency_clients, 200)
        args.rate = min(args.rate, 200.0)
        args.idle = min(args.idle, 500)
        args.duration = min(args.duration, 3.0)
        args.warmup = min(args.warmup, 0.5)
    return args


def main(argv: list[str] | None = None) -> int:
    given = sys.argv[1:] if argv is None else argv
    backend = argparse.ArgumentParser(add_help=False)
    backend.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    backend.add_argument("--nodes", type=int, default=1)
    chosen, rest = backend.parse_known_args(given)
    if chosen.backend == "postgres" or chosen.nodes > 1:
        # Several nodes on PostgreSQL + NATS: the cluster benchmark, beside one SQLite node
        # and its ceilings in the same run (bench/cluster_bench.py, which uses this module).
        if (chosen.backend, chosen.nodes) != ("postgres", 2):
            print("several nodes: --backend postgres --nodes 2", file=sys.stderr)
            return 2
        from bench import cluster_bench

        return cluster_bench.main(rest)
    args = parse_args(rest)
    command = " ".join([".venv/bin/python", "-m", "bench.gateway_bench", *given])
    scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    placement = Placement.detect(args.quiet_wait)
    raise_nofile(args.idle + 4096)
    jitter = timer_jitter()
    results: dict[str, dict[str, RunResult]] = {}
    with tempfile.TemporaryDirectory(prefix="chatd-gwbench-") as tmp:
        workdir = Path(tmp)
        for scenario in scenarios:
            results[scenario] = {}
            for target in TARGETS:
                print(f"- {scenario} / {target} …", file=sys.stderr, flush=True)
                started = time.monotonic()
                if scenario == "throughput":
                    result = run_throughput(
                        target,
                        workdir,
                        clients=args.clients,
                        conv_size=args.conv_size,
                        warmup=args.warmup,
                        duration=args.duration,
                        window=args.window,
                        procs=args.procs,
                        placement=placement,
                        profile=args.profile,
                    )
                elif scenario == "latency":
                    result = run_latency(
                        target,
                        workdir,
                        clients=args.latency_clients,
                        conv_size=args.conv_size,
                        rate=args.rate,
                        warmup=args.warmup,
                        duration=args.duration,
                        procs=args.procs,
                        placement=placement,
                        profile=args.profile,
                    )
                elif scenario == "idle":
                    result = run_idle(
                        target,
                        workdir,
                        connections=args.idle,
                        conv_size=args.conv_size,
                        procs=args.procs,
                        placement=placement,
                    )
                else:
                    raise SystemExit(f"unknown scenario {scenario!r}")
                results[scenario][target] = result
                print(
                    f"  done in {time.monotonic() - started:.1f} s "
                    f"(setup {result.setup_seconds:.1f} s)",
                    file=sys.stderr,
                    flush=True,
                )
    print(render(results, args, command, placement, jitter))
    if args.json is not None:
        raw = {
            s: {
                t: {**asdict(r), "load": {**asdict(r.load), "deliver_ms": None, "ack_ms": None}}
                for t, r in per.items()
            }
            for s, per in results.items()
        }
        args.json.write_text(json.dumps(raw, indent=2))
    failed = any(r.problems for per in results.values() for r in per.values())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
