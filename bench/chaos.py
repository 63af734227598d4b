"""Chaos and load run of chatd: does any acknowledged message get lost, duplicated or leaked?

Long run (docs/reliability.md):

    .venv/bin/python -m bench.chaos --duration 600

(the defaults: 200 clients, 50 conversations, 500 msg/s, every fault on; the CI run is
``tests/chaos/test_chaos_short.py``).

Cluster run (N ``chatd serve`` nodes on a real PostgreSQL and a real nats-server, started by
the project's own classes in ``tests/servers/``; the clients spread over the nodes):

    .venv/bin/python -m bench.chaos --nodes 3 --backend postgres --duration 120

adds to the faults a ``kill -9`` of one node at a time (then its restart on the same port and
node id), a NATS restart (stopped ``--nats-down`` seconds) and a PostgreSQL restart (a fast
stop and a start); ``chatd verify`` and the ground truth then read the PostgreSQL database.
The defaults, ``--nodes 1 --backend sqlite``, are the single-node run.

Resume storm (1,000 clients × 50 missed events each, time until all have resumed):

    .venv/bin/python -m bench.chaos --resume-storm

A real ``chatd serve`` subprocess on 127.0.0.1 (default FULL durability) is loaded by real
WebSocket clients while faults are injected: ``kill -9`` of the server then a restart on the
same data directory and port, connections cut at random, a slow consumer, reconnect storms,
members leaving and being added back.  Afterwards every client resumes, every user reads
its conversations afresh, the server stops, ``chatd verify`` runs, and the history of what
clients were told is checked against the log read through the store's export path.

Prints one table; exits 1 if anything is lost, duplicated, leaked, missing (gaps) — or the
other checks fail (phantom, diverged, order, verify, RSS bound, server errors) — else 0.
The history can be kept as JSON lines (``--history FILE``); the data directory with
``--workdir DIR`` (a failed run's temporary directory is kept and printed anyway).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import uvloop

from bench.chaos_harness.client import ClientConfig
from bench.chaos_harness.runner import ChaosConfig, run_chaos
from bench.chaos_harness.storm import StormConfig, run_storm


def _span(raw: str) -> tuple[float, float]:
    lo, _, hi = raw.partition(",")
    low = float(lo)
    high = float(hi) if hi else low
    if not 0 < low <= high:
        raise argparse.ArgumentTypeError(f"expected LOW,HIGH seconds, got {raw!r}")
    return low, high


def _env(raw: str) -> tuple[str, str]:
    key, sep, value = raw.partition("=")
    if not sep or not key.startswith("CHATD_"):
        raise argparse.ArgumentTypeError(f"expected CHATD_NAME=VALUE, got {raw!r}")
    return key, value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    d = ChaosConfig()
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=d.duration, help="seconds of load")
    ap.add_argument("--clients", type=int, default=d.clients)
    ap.add_argument("--conversations", type=int, default=d.conversations)
    ap.add_argument("--convs-per-user", type=int, default=d.convs_per_user)
    ap.add_argument("--rate", type=float, default=d.rate, help="messages/s offered in all")
    ap.add_argument("--text-bytes", type=int, default=d.text_bytes)
    ap.add_argument("--seed", type=int, default=d.seed)
    on_off = argparse.BooleanOptionalAction
    ap.add_argument("--kill", action=on_off, default=d.kill, help="kill -9 and restart")
    ap.add_argument("--kill-every", type=_span, default=d.kill_every, metavar="LOW,HIGH")
    ap.add_argument("--drops", action=on_off, default=d.drops, help="cut connections")
    ap.add_argument("--drop-every", type=_span, default=d.drop_every, metavar="LOW,HIGH")
    ap.add_argument("--slow", action=on_off, default=d.slow, help="one slow consumer")
    ap.add_argument("--churn", action=on_off, default=d.churn, help="members leave, re-join")
    ap.add_argument("--churn-every", type=_span, default=d.churn_every, metavar="LOW,HIGH")
    ap.add_argument("--storm", action=on_off, default=d.storm, help="cut all at once")
    ap.add_argument("--storm-every", type=_span, default=d.storm_every, metavar="LOW,HIGH")
    ap.add_argument("--no-faults", action="store_true", help="load only (churn stays)")
    cluster = ap.add_argument_group("cluster (--nodes > 1 or --backend postgres)")
    cluster.add_argument("--nodes", type=int, default=d.nodes, help="chatd serve nodes")
    cluster.add_argument("--backend", choices=("sqlite", "postgres"), default=d.backend)
    cluster.add_argument("--nats-restart", action=on_off, default=d.nats_restart)
    cluster.add_argument("--nats-every", type=_span, default=d.nats_every, metavar="LOW,HIGH")
    cluster.add_argument("--nats-down", type=float, default=d.nats_down, help="seconds")
    cluster.add_argument("--pg-restart", action=on_off, default=d.pg_restart)
    cluster.add_argument("--pg-every", type=_span, default=d.pg_every, metavar="LOW,HIGH")
    ap.add_argument("--rss-limit-mb", type=float, default=d.rss_limit_mb)
    ap.add_argument("--op-timeout", type=float, default=ClientConfig().op_timeout)
    ap.add_argument("--no-fresh-read", dest="fresh_read", action="store_false")
    ap.add_argument(
        "--server-env",
        type=_env,
        action="append",
        default=[],
        metavar="CHATD_X=V",
        help="extra server setting (repeatable)",
    )
    ap.add_argument("--workdir", type=Path, help="data directory and server log (kept)")
    ap.add_argument("--history", type=Path, help="write the history as JSON lines")
    storm = ap.add_argument_group("resume storm (--resume-storm runs only that)")
    s = StormConfig()
    storm.add_argument("--resume-storm", action="store_true")
    storm.add_argument("--storm-clients", type=int, default=s.clients)
    storm.add_argument("--storm-missed", type=int, default=s.missed)
    storm.add_argument("--storm-conv-size", type=int, default=s.conv_size)
    storm.add_argument("--storm-goal", type=float, default=s.goal_seconds)
    ap.add_argument("--server-profile", type=Path, help="cProfile the server into FILE")
    return ap.parse_args(argv)


def config_of(args: argparse.Namespace) -> ChaosConfig:
    faults = not args.no_faults
    return ChaosConfig(
        duration=args.duration,
        clients=args.clients,
        conversations=args.conversations,
        convs_per_user=args.convs_per_user,
        rate=args.rate,
        text_bytes=args.text_bytes,
        seed=args.seed,
        kill=args.kill and faults,
        kill_every=args.kill_every,
        drops=args.drops and faults,
        drop_every=args.drop_every,
        slow=args.slow and faults,
        churn=args.churn,
        churn_every=args.churn_every,
        storm=args.storm and faults,
        storm_every=args.storm_every,
        rss_limit_mb=args.rss_limit_mb,
        fresh_read=args.fresh_read,
        server_env=tuple(args.server_env),
        workdir=args.workdir,
        history_out=args.history,
        server_profile=args.server_profile,
        client=ClientConfig(op_timeout=args.op_timeout),
        nodes=args.nodes,
        backend=args.backend,
        nats_restart=args.nats_restart and faults,
        nats_every=args.nats_every,
        nats_down=args.nats_down,
        pg_restart=args.pg_restart and faults,
        pg_every=args.pg_every,
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.nodes > 1 and args.backend != "postgres":
        raise SystemExit("several nodes share one database: add --backend postgres")
    if args.resume_storm:
        config = StormConfig(
            clients=args.storm_clients,
            missed=args.storm_missed,
            conv_size=args.storm_conv_size,
            goal_seconds=args.storm_goal,
            workdir=args.workdir,
            profile=args.server_profile,
        )
        storm_report = uvloop.run(run_storm(config))
        print(storm_report.table())
        return 0 if storm_report.ok else 1
    report = uvloop.run(run_chaos(config_of(args)))
    print(report.table())
    if not report.ok:
        print(f"data directory and server log kept in {report.workdir}", file=sys.stderr)
    return 0 if report.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
