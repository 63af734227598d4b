"""Cluster benchmark: send→deliver latency across two chatd nodes on PostgreSQL + NATS,
beside ceilings measured in the same run.

Run:  .venv/bin/python -m bench.gateway_bench --backend postgres --nodes 2   (the same)
      .venv/bin/python -m bench.cluster_bench                 (full: about 10 minutes)
      .venv/bin/python -m bench.cluster_bench --quick         (smoke: well under a minute)
      … --rates 200,1000 --duration 20 --clients 1000 --json FILE

Results and their analysis: docs/performance.md, section "Gateway on two nodes".

For each offered rate, three measures, each on fresh servers (:mod:`bench.cluster_nodes`):

1. **cluster** — two ``chatd serve`` nodes on one PostgreSQL and one nats-server (the
   project's test servers, ``tests/servers/``), the default head poll (1 s) on.  The clients
   of every conversation alternate between the nodes.  Open loop: messages are sent on a
   fixed schedule whatever the acks, spread evenly over all clients, so half of them leave
   from each node.  For every message, the time from writing its ``send`` frame to each
   member device's ``event`` push, split by where the device is: on **the other node**
   (the message went through PostgreSQL, a NATS pointer and the other node's read) or on
   **the sender's node**.  Every member of a conversation lives in the same load process, so
   both readings are of one monotonic clock.
2. **sqlite** — the same clients, conversations and rate on one SQLite node (the
   configuration of ``bench/gateway_bench.py``): what one node does on this machine.
3. **nats** — a raw NATS publish→receive at the same rate (:mod:`bench.nats_ceiling`): the
   hop no change to chatd can remove.

And once per run, the PostgreSQL store's ceiling on the same server: rows/s of
``executemany`` of pre-sealed events (:func:`bench.postgres_store_bench.bench_ceiling`).
Throughput (acked messages/s, deliveries/s) is read at the rate the cluster cannot keep:
"sent / acked per s" and the delivered count over the window.

Accounting: after sending stops (and a bounded drain), every acked message must have reached
every member device exactly once; each (message, device) pair is tracked, so a message that
reached one device twice and another never is seen as one duplicate and one missing.

The load generator is ``bench/gateway_bench.py``'s.  Nothing is pinned: with two nodes,
PostgreSQL, NATS and the load on two CPUs, pinning would choose the result; the report gives
the CPU the servers used (PostgreSQL and NATS counted with the nodes) and what other
processes used.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import math
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import gateway_bench as gb
from bench.cluster_nodes import Backing, backing, deployment
from bench.nats_ceiling import NatsRoundTrip, nats_round_trip
from bench.postgres_store_bench import bench_ceiling

DRAIN_TIMEOUT = 30.0  # a saturated cluster may owe seconds of pushes when sending stops


@dataclass
class RateResult:
    """One offered rate: the cluster and its two ceilings."""

    rate: float
    runs: dict[str, gb.RunResult] = field(default_factory=dict)  # "cluster", "sqlite"
    nats: NatsRoundTrip | None = None


def run_target(
    target: str,
    workdir: Path,
    *,
    rate: float,
    clients: int,
    conv_size: int,
    warmup: float,
    duration: float,
    placement: gb.Placement,
    servers: Backing | None = None,
) -> gb.RunResult:
    """One open-loop run on a fresh deployment of ``target`` ("cluster" or "sqlite")."""
    with deployment(
        target, workdir, clients, conv_size, placement=placement, backing=servers
    ) as deployed:
        result = gb.load_run(
            target,
            f"{rate:g} msg/s",
            deployed.servers,
            deployed.world,
            {
                "mode": "open",
                "warmup": warmup,
                "duration": duration,
                "rate": rate,
                "drain_timeout": DRAIN_TIMEOUT,
            },
            procs=1,
            placement=placement,
            backing_cpu=servers.cpu_seconds if servers is not None else None,
        )
        deployed.keep = bool(result.problems)
    result.problems.extend(deployed.problems)
    return result


def run_rate(
    workdir: Path,
    servers: Backing,
    *,
    rate: float,
    clients: int,
    conv_size: int,
    warmup: float,
    duration: float,
    placement: gb.Placement,
) -> RateResult:
    measured = RateResult(rate)
    for target in ("cluster", "sqlite"):
        measured.runs[target] = run_target(
            target,
            workdir,
            rate=rate,
            clients=clients,
            conv_size=conv_size,
            warmup=warmup,
            duration=duration,
            placement=placement,
            servers=servers if target == "cluster" else None,
        )
    measured.nats = nats_round_trip(servers.nats.url, rate, warmup, duration)
    return measured


# =============================================================================== report


def latency(values: list[float]) -> dict[str, float | int]:
    return {
        "count": len(values),
        "p50_ms": gb.percentile(values, 50),
        "p99_ms": gb.percentile(values, 99),
        "max_ms": max(values, default=math.nan),
    }


def summary(measured: RateResult) -> dict[str, Any]:
    """The figures of one rate, as the report and ``--json`` give them."""
    out: dict[str, Any] = {"rate": measured.rate}
    for target, run in measured.runs.items():
        r = run.load
        out[target] = {
            "other_node": latency(r.remote_deliver_ms),
            "same_node": latency(r.deliver_ms),
            "ack": latency(r.ack_ms),
            "sent": r.sent,
            "acked": r.acked,
            "errors": r.errors,
            "delivered": r.deliveries - r.duplicate_deliveries,
            "expected": r.expected_deliveries,
            "missing": r.missing_deliveries,
            "duplicates": r.duplicate_deliveries,
            "stray": r.stray_deliveries,
            "sent_per_s": run.sent_per_s,
            "acked_per_s": run.acked_per_s,
            "max_send_lag_ms": r.max_send_lag_ms,
            "server_cpu_percent": run.server_cpu_percent,
            "load_cpu_percent": run.load_cpu_percent,
            "steal_percent": run.steal_percent,
            "foreign_cpu_percent": run.foreign_cpu_percent,
            "accounting_ok": run.accounting_ok and r.missing_deliveries == 0,
            "problems": run.problems,
            "warnings": run.warnings,
        }
    if measured.nats is not None:
        n = measured.nats
        out["nats"] = {
            **latency(n.ms),
            "sent": n.sent,
            "received": n.received,
            "missing": n.missing,
            "duplicates": n.duplicates,
        }
    return out


def _ms(figures: dict[str, float | int]) -> str:
    if not figures["count"]:
        return "—"
    return " / ".join(f"{figures[k]:,.1f}" for k in ("p50_ms", "p99_ms", "max_ms"))


def render(summaries: list[dict[str, Any]], header: list[str]) -> str:
    lines = [*header, ""]
    row = "{:<44} {:>26} {:>26}"
    for s in summaries:
        lines.append(f"offered {s['rate']:,.0f} msg/s (open loop)")
        lines.append(row.format("", "2 nodes, PostgreSQL + NATS", "1 node, SQLite"))
        c, q = s["cluster"], s["sqlite"]

        def line(name: str, fmt: Any) -> None:
            lines.append(row.format(name, fmt(c), fmt(q)))  # noqa: B023 - used at once

        line("other node: deliver p50 / p99 / max ms", lambda t: _ms(t["other_node"]))
        line("same node:  deliver p50 / p99 / max ms", lambda t: _ms(t["same_node"]))
        line("send→ack p50 / p99 / max ms", lambda t: _ms(t["ack"]))
        line("delivered / expected", lambda t: f"{t['delivered']:,} / {t['expected']:,}")
        line(
            "missing / duplicate / stray",
            lambda t: f"{t['missing']} / {t['duplicates']} / {t['stray']}",
        )
        line("accounting", lambda t: "OK" if t["accounting_ok"] else "MISMATCH")
        line("sent / acked per s", lambda t: f"{t['sent_per_s']:,.0f} / {t['acked_per_s']:,.0f}")
        line("latest send, ms behind schedule", lambda t: f"{t['max_send_lag_ms']:,.1f}")
        line(
            "servers CPU / load CPU",
            lambda t: f"{t['server_cpu_percent']:.0f} % / {t['load_cpu_percent']:.0f} %",
        )
        line(
            "VM steal / other processes' CPU",
            lambda t: f"{t['steal_percent']:.1f} % / {t['foreign_cpu_percent']:.0f} %",
        )
        n = s["nats"]
        lines.append(
            f"ceiling, NATS publish→receive p50 / p99 / max ms: {_ms(n)}"
            f"  (received {n['received']:,} of {n['sent']:,}, {n['duplicates']} duplicates)"
        )
        for target in ("cluster", "sqlite"):
            lines.extend(f"! {target}: {p}" for p in s[target]["problems"])
            lines.extend(f"! {target}: {w}" for w in s[target]["warnings"])
        lines.append("")
    return "\n".join(lines)


# =============================================================================== main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 20 clients, 2 s windows")
    parser.add_argument("--rates", default="200,1000", help="offered messages/s, comma-separated")
    parser.add_argument("--duration", type=float, default=20.0, help="window per run, seconds")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds before measuring")
    parser.add_argument("--clients", type=int, default=1000, help="clients, over both nodes")
    parser.add_argument("--conv-size", type=int, default=10, help="members per conversation")
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=30.0,
        help="before each window, wait up to this many seconds for the machine to go quiet",
    )
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument(
        "--workdir",
        type=Path,
        help="run here and keep the directory (nodes' logs) of any run that went wrong; "
        "default: a temporary directory, removed",
    )
    args = parser.parse_args(argv)
    args.rates = [float(r) for r in args.rates.split(",") if r.strip()]
    if args.quick:
        args.clients = min(args.clients, 20)
        args.conv_size = min(args.conv_size, 4)
        args.rates = [min(r, 100.0) for r in args.rates[:1]]
        args.duration = min(args.duration, 2.0)
        args.warmup = min(args.warmup, 0.5)
        args.quiet_wait = 0.0
    return args


def run(args: argparse.Namespace, workdir: Path, servers: Backing) -> list[dict[str, Any]]:
    """Every rate of ``args``, on ``servers``' PostgreSQL and NATS; the figures per rate."""
    placement = gb.Placement(None, None, args.quiet_wait)
    return [
        summary(
            run_rate(
                workdir,
                servers,
                rate=rate,
                clients=args.clients,
                conv_size=args.conv_size,
                warmup=args.warmup,
                duration=args.duration,
                placement=placement,
            )
        )
        for rate in args.rates
    ]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    given = sys.argv[1:] if argv is None else argv
    gb.raise_nofile(args.clients + 4096)
    jitter_p99, jitter_max = gb.timer_jitter()
    load_average = os.getloadavg()
    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        if args.workdir is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="chatd-")))
        else:
            workdir = args.workdir
            workdir.mkdir(parents=True, exist_ok=True)
        servers = stack.enter_context(backing())
        summaries = run(args, workdir, servers)
        # The PostgreSQL store's ceiling, on the same server: executemany of pre-sealed rows.
        ceiling = asyncio.run(
            bench_ceiling(servers.postgres, workdir, transactions=20 if args.quick else 200)
        )
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    header = [
        f"chatd cluster benchmark — {now}, {time.monotonic() - started:.0f} s",
        f"command: .venv/bin/python -m bench.cluster_bench {' '.join(given)}",
        f"machine: {gb.machine()}",
        f"load average at start: {' '.join(f'{x:.2f}' for x in load_average)}",
        f"noise:   a 1 ms sleep wakes p99 {jitter_p99:.1f} ms / max {jitter_max:.1f} ms late",
        f"clients: {args.clients} over conversations of {args.conv_size}, alternating between "
        f"the nodes; {args.warmup:g} s warm-up, {args.duration:g} s window per run",
        f"ceiling: the PostgreSQL store, executemany of pre-sealed rows: {ceiling:,.0f} rows/s",
    ]
    print(render(summaries, header))
    if args.json is not None:
        args.json.write_text(json.dumps({"header": header, "rates": summaries}, indent=2))
    runs = [s[target] for s in summaries for target in ("cluster", "sqlite")]
    return 0 if all(r["accounting_ok"] and not r["problems"] for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
