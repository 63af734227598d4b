"""The cluster benchmark's own accounting, at a tiny scale (``--quick``: 20 clients, one
rate, a 2 s window): two real ``chatd serve`` nodes on the test PostgreSQL and nats-server,
one SQLite node and the raw NATS hop, as ``docs/performance.md`` quotes them.

Checked: every message was delivered exactly once to every member device (none missing,
none twice, none unknown), on the other node as well as on the sender's, and the report has
its figures.  A benchmark that miscounts would report fiction.  (Whether the machine was
quiet enough for the figures to mean anything is the report's warnings, not checked here.)
"""

from __future__ import annotations

import math
from pathlib import Path

from bench import cluster_bench
from bench.cluster_nodes import Backing
from tests.servers.nats import NatsServer
from tests.servers.postgres import PostgresServer


def test_quick_run_delivers_every_message_once_on_both_nodes(
    tmp_path: Path, postgres_server: PostgresServer, nats_server: NatsServer
) -> None:
    args = cluster_bench.parse_args(["--quick"])
    [figures] = cluster_bench.run(args, tmp_path, Backing(postgres_server, nats_server))
    offered = int(figures["rate"] * (args.warmup + args.duration))
    for target in ("cluster", "sqlite"):
        run = figures[target]
        assert run["problems"] == [], run["problems"]
        assert run["sent"] == run["acked"] == offered and run["errors"] == {}
        # 20 clients in conversations of 4: each message is owed to 4 devices.
        assert run["expected"] == offered * args.conv_size
        assert run["delivered"] == run["expected"]
        assert run["missing"] == run["duplicates"] == run["stray"] == 0
        assert run["accounting_ok"]
        assert run["same_node"]["count"] > 0 and math.isfinite(run["same_node"]["p99_ms"])
        assert run["ack"]["count"] > 0
    cross = figures["cluster"]["other_node"]
    assert cross["count"] > 0 and 0 < cross["p50_ms"] <= cross["p99_ms"] <= cross["max_ms"]
    assert figures["sqlite"]["other_node"]["count"] == 0  # one node: nothing crosses
    nats = figures["nats"]
    assert nats["received"] == nats["sent"] == offered and nats["duplicates"] == 0
    assert nats["count"] > 0 and nats["p50_ms"] > 0
    report = cluster_bench.render([figures], ["header"])
    assert "other node: deliver p50 / p99 / max ms" in report and "MISMATCH" not in report
