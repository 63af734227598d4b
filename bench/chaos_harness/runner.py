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

In cluster mode (``ChaosConfig.cluster``) "the server" is a :class:`~.cluster.ChaosCluster`:
the clients are spread over its nodes, a kill is of one node, and NATS and PostgreSQL
restarts join the faults; the steps are the same.
"""

from __future__ import annotations

import asyncio
import random
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from .checker import Result, check
from .client import PendingOp, SimClient
from .cluster import ChaosCluster
from .history import Fault, History
from .report import ChaosConfig, Report, Span
from .server import ChaosServer, create_accounts
from .truth import read_log

__all__ = ["ChaosConfig", "Report", "Run", "run_chaos"]


class Run:
    def __init__(self, config: ChaosConfig) -> None:
        self.config = config
        self.rng = random.Random(config.seed)
        self.history = History()
        self._tmp = config.workdir is None
        self.workdir = config.workdir or Path(tempfile.mkdtemp(prefix="chatd-chaos-"))
        self.server: ChaosServer | ChaosCluster
        if config.cluster:
            cluster_rng = random.Random(self.rng.getrandbits(64))
            self.server = ChaosCluster(
                self.workdir,
                config.nodes,
                dict(config.server_env),
                cluster_rng,
                profile=config.server_profile,
            )
        else:
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
        if isinstance(self.server, ChaosCluster):
            accounts = await self.server.create_accounts(c.clients)
        else:
            accounts = await create_accounts(self.server.data_dir, c.clients)
        await self.server.start()
        for i, account in enumerate(accounts):
            client = SimClient(
                i,
                account.user_id,
                account.token,
                self.server.urls_for(i),
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
        if isinstance(self.server, ChaosCluster) and c.nats_restart:
            tasks.append(self._spawn(self._every(c.nats_every, self._restart_nats)))
        if isinstance(self.server, ChaosCluster) and c.pg_restart:
            tasks.append(self._spawn(self._every(c.pg_every, self._restart_postgres)))
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
        def killed(what: str) -> None:
            self.history.add(Fault(self.history.now(), "kill9", what))

        down = await self.server.crash_and_restart(killed)
        self.report.downtime.append(down)
        self.history.add(Fault(self.history.now(), "restart", f"down {down:.2f} s"))

    async def _restart_nats(self) -> None:
        assert isinstance(self.server, ChaosCluster)
        self.history.add(Fault(self.history.now(), "nats_stop", ""))
        await self.server.restart_nats(self.config.nats_down)
        self.history.add(Fault(self.history.now(), "nats_start", ""))

    async def _restart_postgres(self) -> None:
        assert isinstance(self.server, ChaosCluster)
        self.history.add(Fault(self.history.now(), "postgres_stop", "fast"))
        down = await self.server.restart_postgres()
        self.history.add(Fault(self.history.now(), "postgres_start", f"down {down:.2f} s"))

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
        if isinstance(self.server, ChaosCluster):
            self.report.kills_per_node = self.server.kills_per_node
            for client in self.clients:
                for url, count in client.connected_to.items():
                    self.report.sessions_per_node[self.server.node_of(url)] += count
            self.report.clients_moved = sum(1 for cl in self.clients if len(cl.connected_to) > 1)
            self.report.nats_restarts = self.server.nats_restarts
            self.report.pg_restarts = len(self.server.pg_downtime)
            self.report.pg_downtime = self.server.pg_downtime
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
