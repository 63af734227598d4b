"""A chaos run's settings (:class:`ChaosConfig`) and its printed table (:class:`Report`).

The settings' defaults are the long run of docs/reliability.md on one node; the cluster
mode (``nodes`` > 1 or ``backend="postgres"``) adds a real PostgreSQL and a real NATS, and
two more faults (:mod:`.cluster`).  The table of a single-node SQLite run is unchanged: the
cluster rows appear only in cluster mode.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from .checker import Result, percentile
from .client import ClientConfig

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
    # Cluster mode: N ``chatd serve`` nodes on a real PostgreSQL and a real NATS.
    nodes: int = 1
    backend: str = "sqlite"  # or "postgres"
    nats_restart: bool = True  # cluster mode only: stop NATS, wait, start it again
    nats_every: Span = (15.0, 30.0)
    nats_down: float = 3.0  # seconds NATS stays down
    pg_restart: bool = True  # cluster mode only: a fast stop then start of PostgreSQL
    pg_every: Span = (20.0, 40.0)

    def __post_init__(self) -> None:
        if self.backend not in ("sqlite", "postgres"):
            raise ValueError(f"backend: sqlite or postgres, not {self.backend!r}")
        if self.nodes > 1 and self.backend != "postgres":
            raise ValueError("several nodes share one database: backend must be postgres")

    @property
    def cluster(self) -> bool:
        return self.nodes > 1 or self.backend == "postgres"


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
    # Cluster mode only.
    kills_per_node: Counter[str] = field(default_factory=Counter)
    sessions_per_node: Counter[str] = field(default_factory=Counter)  # connections opened
    clients_moved: int = 0  # clients that connected to more than one node
    nats_restarts: int = 0
    pg_restarts: int = 0
    pg_downtime: list[float] = field(default_factory=list)

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
        if c.cluster:
            faults[0] = (
                f"kill -9 of one node every {c.kill_every[0]:g}-{c.kill_every[1]:g} s"
                if c.kill
                else ""
            )
            faults.append(
                f"NATS restart every {c.nats_every[0]:g}-{c.nats_every[1]:g} s"
                f" (down {c.nats_down:g} s)"
                if c.nats_restart
                else ""
            )
            faults.append(
                f"PostgreSQL restart every {c.pg_every[0]:g}-{c.pg_every[1]:g} s"
                if c.pg_restart
                else ""
            )
        down = sorted(self.downtime)
        rows = [
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
        if c.cluster:
            rows[1:1] = [("cluster", f"{c.nodes} nodes, {c.backend}, NATS")]
            at = next(i for i, (name, _) in enumerate(rows) if name.startswith("server down"))
            pg = sorted(self.pg_downtime)
            per_node = ", ".join(f"{n} {k}" for n, k in sorted(self.kills_per_node.items()))
            rows[at + 1 : at + 1] = [
                ("kills per node", per_node or "none"),
                (
                    "connections opened per node / clients that changed node",
                    ", ".join(f"{n} {k}" for n, k in sorted(self.sessions_per_node.items()))
                    + f" / {self.clients_moved}",
                ),
                ("NATS restarts", str(self.nats_restarts)),
                (
                    "PostgreSQL restarts / down p50 / max",
                    f"{self.pg_restarts} / {percentile(pg, 0.5):.2f} s"
                    f" / {max(pg, default=0):.2f} s",
                ),
            ]
        return rows

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
