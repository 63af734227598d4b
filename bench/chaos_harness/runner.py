"""One chaos run: load, faults, the final reads, the check, the report.

1. Accounts are created in a fresh data directory; the server starts (FULL durability).
2. ``clients`` simulated clients connect; ``conversations`` conversations are created over
   the protocol (each user in ``convs_per_user`` of them; the slow consumer, if any, in all).
3. For ``duration`` seconds: the load generator offers ``rate`` messages/s in all, each to a
   random client and one of the conversations it belongs to (if that client's outbox is
   already long, the message is not offered: counted, never hidden); the churner makes
   members leave and adds people back; the nemesis injects the enabled faults.
4. Then: faults stop (the server is up), the outboxes drain (every operation answered, or
   the drain times out: those stay indeterminate), every client resumes once more with
   ``sync`` (its final stream), and every user opens a fresh reader that syncs from nothing
   (it must get its whole window of every conversation).
5. The server stops (SIGTERM); ``chatd verify`` runs; the log is read with the key file; the
   checker compares; the report adds restarts, RSS, latency.
"""

from __future__ import annotations

import asyncio
import random
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from .checker import Result, check, percentile
from .client import ClientConfig, PendingOp, SimClient
from .history import Fault, History
from .server import ChaosServer, create_accounts
from .truth import read_log

Span = tuple[float, float]


@dataclass(frozen=True)
class ChaosConfig:
    # Defaults: the long run of docs/reliability.md (the CI test sets its own).
    duration: float = 600.0
    clients: int = 200
    conversations: int = 50
    convs_per_user: int = 3
    rate: float = 500.0  # messages/s offered, all clients together
    text_bytes: int = 160
    seed: int = 1
    kill: bool = True
    kill_every: Span = (5.0, 15.0)
    drops: bool = True
    drop_every: Span = (0.3, 1.0)
    slow: bool = True  # client 0 is a slow consumer, member of every conversation
    churn: bool = True
    churn_every: Span = (0.3, 1.0)
    storm: bool = True  # every few seconds, drop every connection at once
    storm_every: Span = (8.0, 15.0)
    max_outbox: int = 20
    rss_limit_mb: float = 512.0
    drain_timeout: float = 60.0
    final_timeout: float = 120.0
    fresh_read: bool = True
    server_env: tuple[tuple[str, str], ...] = ()
    workdir: Path | None = None  # kept after the run if given; a temporary one otherwise
    history_out: Path | None = None
    server_profile: Path | None = None
    client: ClientConfig = field(default_factory=ClientConfig)


@dataclass
class Report:
    config: ChaosConfig
    result: Result
    elapsed: float = 0.0
    offered: int = 0
    not_offered: int = 0  # outbox full: the generator skipped the message
    kills: int = 0
    restarts: int = 0
    downtime: list[float] = field(default_factory=list)
    drops: int = 0
    storms: int = 0
    joins: int = 0
    leaves: int = 0
    closes: Counter[int] = field(default_factory=Counter)
    slow_closes: Counter[int] = field(default_factory=Counter)  # the slow consumer's only
    max_rss_mb: float = 0.0
    server_exit: int = 0
    server_log_problems: list[str] = field(default_factory=list)
    verify_code: int = 0
    verify_output: str = ""
    final_incomplete: int = 0  # clients whose final resume or fresh read never completed
    # Operations still unanswered when the drain ended (server up, no faults, for
    # drain_timeout): a liveness failure, e.g. a batch that fails on every retry.
    unanswered: int = 0
    client_errors: Counter[str] = field(default_factory=Counter)
    workdir: Path | None = None
    phases: list[tuple[str, float]] = field(default_factory=list)  # (name, seconds)

    def bad(self) -> dict[str, int]:
        return {
            **self.result.bad(),
            "verify": int(self.verify_code != 0),
            "rss_over_limit": int(self.max_rss_mb > self.config.rss_limit_mb),
            "server_errors": len(self.server_log_problems) + int(self.server_exit != 0),
            "final_incomplete": self.final_incomplete,
            "unanswered": self.unanswered,
            "harness_errors": sum(self.client_errors.values()),
        }

    @property
    def ok(self) -> bool:
        return not any(self.bad().values())

    def rows(self) -> list[tuple[str, str]]:
        r, c = self.result, self.config
        lat = r.latencies
        faults = [
            f"kill -9 every {c.kill_every[0]:g}-{c.kill_every[1]:g} s" if c.kill else "",
            f"drops every {c.drop_every[0]:g}-{c.drop_every[1]:g} s" if c.drops else "",
            "1 slow consumer" if c.slow else "",
            "join/leave churn" if c.churn else "",
            f"reconnect storms every {c.storm_every[0]:g}-{c.storm_every[1]:g} s"
            if c.storm
            else "",
        ]
        down = sorted(self.downtime)
        return [
            (
                "load",
                f"{c.clients} clients, {c.conversations} conversations,"
                f" {c.rate:g} msg/s offered, {c.duration:g} s, seed {c.seed}",
            ),
            ("faults", ", ".join(f for f in faults if f) or "none"),
            (
                "messages offered / not offered (outbox full)",
                f"{self.offered} / {self.not_offered}",
            ),
            ("messages sent (distinct client_msg_id)", str(r.sent)),
            ("acked", str(r.acked)),
            (
                "indeterminate (never answered) / of which in the log",
                f"{r.indeterminate} / {r.indeterminate_present}",
            ),
            ("**unanswered after the drain**", str(self.unanswered)),
            ("refused (error answer)", str(r.failed)),
            ("joins / leaves acked", f"{self.joins} / {self.leaves}"),
            ("**lost**", str(r.lost)),
            ("**duplicated**", str(r.duplicated)),
            ("**leaked**", str(r.leaked)),
            ("**gaps**", str(r.gaps)),
            ("**phantom / diverged / order**", f"{r.phantom} / {r.diverged} / {r.order}"),
            ("events received (all sessions)", str(r.received)),
            (
                "archived markers / seqs covered by them",
                f"{r.archived_markers} / {r.archived_seqs}",
            ),
            ("log: conversations / events", f"{r.conversations} / {r.log_events}"),
            ("restarts (kill -9)", str(self.kills)),
            (
                "server down per restart p50 / max",
                f"{percentile(down, 0.5):.2f} s / {max(down, default=0):.2f} s",
            ),
            ("connections cut / storms", f"{self.drops} / {self.storms}"),
            (
                "sessions / closes 4005 (slow reader: 4005, 1006)",
                f"{r.sessions} / {self.closes.get(4005, 0)}"
                f" ({self.slow_closes.get(4005, 0)}, {self.slow_closes.get(1006, 0)})",
            ),
            ("max server RSS", f"{self.max_rss_mb:.0f} MiB (limit {c.rss_limit_mb:g})"),
            (
                "ack latency p50 / p99 (user action → ack)",
                f"{percentile(lat, 0.5) * 1000:.0f} ms / {percentile(lat, 0.99) * 1000:.0f} ms",
            ),
            ("chatd verify", f"exit {self.verify_code}: {self._verify_summary()}"),
            (
                "server log errors / final exit code",
                f"{len(self.server_log_problems)} / {self.server_exit}",
            ),
            (
                "final reads incomplete / harness errors",
                f"{self.final_incomplete} / {sum(self.client_errors.values())}",
            ),
            (
                "wall time",
                f"{self.elapsed:.1f} s ("
                + ", ".join(f"{name} {secs:.1f}" for name, secs in self.phases)
                + ")",
            ),
            (
                "verdict",
                "PASS" if self.ok else "FAIL " + str({k: v for k, v in self.bad().items() if v}),
            ),
        ]

    def _verify_summary(self) -> str:
        lines = self.verify_output.splitlines()
        summary = [line for line in lines if "checked" in line or "BROKEN" in line]
        return "; ".join(summary[:3]) or (lines[-1] if lines else "")

    def table(self) -> str:
        rows = self.rows()
        width = max(len(k) for k, _ in rows)
        lines = [f"| {'':{width}} | |", f"|{'-' * (width + 2)}|---|"]
        lines += [f"| {k:{width}} | {v} |" for k, v in rows]
        lines += [f"  {p}" for p in self.result.problems[:20]]
        lines += [f"  server: {p}" for p in self.server_log_problems[:5]]
        return "\n".join(lines)


class Run:
    def __init__(self, config: ChaosConfig) -> None:
        self.config = config
        self.rng = random.Random(config.seed)
        self.history = History()
        self._tmp = config.workdir is None
        self.workdir = config.workdir or Path(tempfile.mkdtemp(prefix="chatd-chaos-"))
        self.server = ChaosServer(
            self.workdir, dict(config.server_env), profile=config.server_profile
        )
        self.clients: list[SimClient] = []
        self.members: dict[int, set[int]] = {}  # conv -> users, as acked
        self.pending_change: set[int] = set()
        self.stop = asyncio.Event()
        self._by_user: dict[int, SimClient] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._phase_start = time.monotonic()
        self.report = Report(config, Result(), workdir=self.workdir)

    def client_of(self, user: int) -> SimClient:
        return self._by_user[user]

    def phase(self, name: str) -> None:
        """Close the current phase of the run (timings for the report)."""
        now = time.monotonic()
        self.report.phases.append((name, now - self._phase_start))
        self._phase_start = now

    async def execute(self) -> Report:
        started = time.monotonic()
        try:
            await self._execute()
        finally:
            self.server.force_stop()
            if self._tmp and self.report.ok:
                shutil.rmtree(self.workdir, ignore_errors=True)
        self.report.elapsed = time.monotonic() - started
        return self.report

    async def _execute(self) -> None:
        c = self.config
        accounts = await create_accounts(self.server.data_dir, c.clients)
        await self.server.start()
        for i, account in enumerate(accounts):
            client = SimClient(
                i,
                account.user_id,
                account.token,
                self.server.ws_url,
                self.history,
                c.client,
                random.Random(self.rng.getrandbits(64)),
                slow=c.slow and i == 0,
            )
            self.clients.append(client)
            client.start()
        self._by_user = {cl.user_id: cl for cl in self.clients}
        await self._create_conversations()
        self.phase("setup")
        tasks = [self._spawn(self._generate())]
        if c.churn:
            tasks.append(self._spawn(self._every(c.churn_every, self._churn)))
        if c.kill:
            tasks.append(self._spawn(self._every(c.kill_every, self._kill)))
        if c.drops:
            tasks.append(self._spawn(self._every(c.drop_every, self._drop)))
        if c.storm:
            tasks.append(self._spawn(self._every(c.storm_every, self._storm)))
        await asyncio.sleep(c.duration)
        self.stop.set()
        await asyncio.gather(*tasks)
        self.phase("load")
        await self._finish()

    def _spawn(self, coro: Awaitable[None]) -> asyncio.Task[None]:
        async def wrap() -> None:
            await coro

        task = asyncio.get_running_loop().create_task(wrap())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # ------------------------------------------------------------------ set-up

    async def _create_conversations(self) -> None:
        c = self.config
        users = [cl.user_id for cl in self.clients]
        regular = users[1:] if c.slow else users
        plan: list[set[int]] = [set() for _ in range(c.conversations)]
        for user in regular:
            for k in self.rng.sample(
                range(c.conversations), min(c.convs_per_user, c.conversations)
            ):
                plan[k].add(user)
        for members in plan:
            while len(members) < 2:
                members.add(self.rng.choice(regular))
            if c.slow:
                members.add(users[0])
        creations: list[tuple[set[int], PendingOp]] = []
        for k, members in enumerate(plan):
            creator = self.client_of(self.rng.choice(sorted(set(regular) & members)))
            others = sorted(members - {creator.user_id})
            op = creator.submit("create", None, {"members": others, "name": f"Chaos {k}"})
            creations.append((members, op))
        for members, op in creations:
            record = await asyncio.wait_for(op.done, 120)
            if record is None or record.conv is None:
                raise RuntimeError(f"could not create a conversation: {record}")
            self.members[record.conv] = set(members)
            for user in members:
                self.client_of(user).sendable.add(record.conv)

    # ------------------------------------------------------------------ load

    async def _generate(self) -> None:
        c = self.config
        tick = 0.02
        budget = 0.0
        last = time.monotonic()
        senders = [cl for cl in self.clients if not cl.slow] or self.clients
        while not self.stop.is_set():
            await asyncio.sleep(tick)
            now = time.monotonic()
            budget += (now - last) * c.rate
            last = now
            while budget >= 1:
                budget -= 1
                self.report.offered += 1
                client = self.rng.choice(senders)
                if not client.sendable or len(client.outbox) >= c.max_outbox:
                    self.report.not_offered += 1
                    continue
                client.submit_message(self.rng.choice(sorted(client.sendable)), c.text_bytes)

    async def _every(self, span: Span, action: Callable[[], Awaitable[None]]) -> None:
        while True:
            try:
                await asyncio.wait_for(self.stop.wait(), self.rng.uniform(*span))
                return
            except TimeoutError:
                await action()

    async def _churn(self) -> None:
        """One membership change in a conversation with none pending: a member leaves, or
        a member adds someone who is not in it (back)."""
        free = [conv for conv in self.members if conv not in self.pending_change]
        if not free:
            return
        conv = self.rng.choice(free)
        members = self.members[conv]
        slow_user = self.clients[0].user_id if self.config.slow else None
        movable = sorted(u for u in members if u != slow_user)
        outsiders = sorted(u for u in self._by_user if u not in members)
        if outsiders and (len(movable) <= 2 or self.rng.random() < 0.5):
            adder = self.client_of(self.rng.choice(movable))
            user = self.rng.choice(outsiders)
            op = adder.submit("add", conv, {"conv": conv, "user": user}, target=user)
            self.pending_change.add(conv)
            self._spawn(self._after_add(conv, user, op))
        elif len(movable) > 2:
            leaver = self.client_of(self.rng.choice(movable))
            leaver.sendable.discard(conv)  # sends queued before the leave go first (FIFO)
            op = leaver.submit("leave", conv, {"conv": conv})
            self.pending_change.add(conv)
            self._spawn(self._after_leave(conv, leaver, op))

    async def _after_add(self, conv: int, user: int, op: PendingOp) -> None:
        try:
            record = await op.done
            if record is not None:
                self.report.joins += 1
                self.members[conv].add(user)
                self.client_of(user).sendable.add(conv)
        finally:
            self.pending_change.discard(conv)

    async def _after_leave(self, conv: int, leaver: SimClient, op: PendingOp) -> None:
        try:
            record = await op.done
            self.members[conv].discard(leaver.user_id)
            if record is not None:
                self.report.leaves += 1
        finally:
            self.pending_change.discard(conv)

    # ------------------------------------------------------------------ nemesis

    async def _kill(self) -> None:
        self.history.add(Fault(self.history.now(), "kill9", f"pid {self.server.pid}"))
        down = await self.server.crash_and_restart()
        self.report.downtime.append(down)
        self.history.add(Fault(self.history.now(), "restart", f"down {down:.2f} s"))

    async def _drop(self) -> None:
        client = self.rng.choice(self.clients)
        if client.drop():
            self.report.drops += 1
            self.history.add(Fault(self.history.now(), "drop", f"process {client.process}"))

    async def _storm(self) -> None:
        dropped = sum(1 for client in self.clients if client.drop())
        self.report.storms += 1
        self.history.add(Fault(self.history.now(), "storm", f"{dropped} connections cut"))

    # ------------------------------------------------------------------ the end

    async def _finish(self) -> None:
        c = self.config
        if not self.server.running:
            await self.server.start()
        for client in self.clients:
            client.calm()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + c.drain_timeout
        # Polls 200 outboxes ten times a second: simpler than an event per client.
        while any(cl.outbox for cl in self.clients) and loop.time() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.1)
        self.report.unanswered = sum(len(cl.outbox) for cl in self.clients)
        self.phase("drain")
        await asyncio.gather(*(cl.stop() for cl in self.clients))
        for task in list(self._tasks):  # membership changes never answered
            task.cancel()
        limit = asyncio.Semaphore(50)

        async def once(client: SimClient, final: bool) -> bool:
            async with limit:
                return await client.resume_once(loop.time() + c.final_timeout, final=final)

        done = await asyncio.gather(*(once(cl, False) for cl in self.clients))
        self.phase("final resume")
        if c.fresh_read:
            done += await asyncio.gather(*(once(cl, True) for cl in self.clients))
            self.phase("fresh reads")
        self.report.final_incomplete = sum(1 for ok in done if not ok)
        if c.slow:
            self.report.slow_closes.update(self.clients[0].closes)
        for client in self.clients:
            self.report.closes.update(client.closes)
            self.report.client_errors.update(client.errors)
        self.report.server_exit = await self.server.stop()
        self.report.kills = self.server.kills
        self.report.restarts = self.server.starts - 1
        self.report.max_rss_mb = self.server.max_rss_kb / 1024
        self.report.server_log_problems = self.server.log_problems()
        self.phase("stop")
        code, output = await asyncio.to_thread(self.server.verify)
        self.report.verify_code, self.report.verify_output = code, output
        self.phase("verify")
        log = await read_log(self.server.store_env())
        if c.history_out is not None:
            self.history.dump(c.history_out)
        self.report.result = await asyncio.to_thread(check, self.history, log)
        self.phase("check")


async def run_chaos(config: ChaosConfig) -> Report:
    return await Run(config).execute()
