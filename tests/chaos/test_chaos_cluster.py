"""A short chaos run of a chatd cluster: two ``chatd serve`` nodes on a real PostgreSQL and
a real nats-server (``tests/servers/``), for CI.

About 40 s of ~120 messages/s from 16 real WebSocket clients in 6 conversations, the clients
spread over the two nodes, while: one node at a time is killed with SIGKILL (every 3–6 s,
seeded) and restarted on its port with its node id (its clients reconnect to the other
node, or to it once it is back, and resume with ``sync``); NATS is stopped for 2 s and
started again (every 10–14 s: the head poll must deliver what the broker lost);
PostgreSQL gets a fast stop and a start (every 12–18 s: every node's connections break);
connections are cut at random; one client keeps stopping to read; members leave and are
added back.  Then every client resumes, every user reads everything afresh, the nodes stop,
``chatd verify`` runs on the PostgreSQL database, and the checker compares what the clients
were told with the log read through the store's export path: nothing may be lost,
duplicated, leaked or missing.

The seed is fixed and printed (``CHAOS_SEED`` overrides it); a failing run's table, the
nodes' logs (``run/chaos-a/server.log``…) and the history (JSON lines) are under pytest's
``tmp_path``.  A missing PostgreSQL or nats-server binary fails the test (never a skip).
"""

from __future__ import annotations

import os
from pathlib import Path

from bench.chaos_harness.runner import ChaosConfig, run_chaos

SEED = int(os.environ.get("CHAOS_SEED", "20260102"))


async def test_node_kill9_nats_and_postgres_restarts_drops_slow_consumer_churn(
    tmp_path: Path,
) -> None:
    config = ChaosConfig(
        duration=40,
        clients=16,
        conversations=6,
        convs_per_user=3,
        rate=120,
        seed=SEED,
        nodes=2,
        backend="postgres",
        kill=True,
        kill_every=(3.0, 6.0),
        nats_restart=True,
        nats_every=(10.0, 14.0),
        nats_down=2.0,
        pg_restart=True,
        pg_every=(12.0, 18.0),
        drops=True,
        slow=True,
        churn=True,
        storm=False,
        workdir=tmp_path / "run",
        history_out=tmp_path / "history.jsonl",
    )
    report = await run_chaos(config)
    table = report.table()
    print(f"\nchaos cluster seed {report.config.seed}, data in {tmp_path}\n{table}")
    assert report.ok, table
    r = report.result
    assert (r.lost, r.duplicated, r.leaked, r.gaps) == (0, 0, 0, 0), table
    assert (r.phantom, r.diverged, r.order) == (0, 0, 0), table
    assert report.verify_code == 0, report.verify_output
    # Every fault kind did happen, and the load was real.
    assert report.kills >= 2, table
    assert report.nats_restarts >= 1, table
    assert report.pg_restarts >= 1, table
    assert report.drops >= 5, table
    assert report.joins + report.leaves >= 5, table
    assert r.acked >= 1500, table
    assert r.received > r.acked, table
    # The clients were spread over both nodes, and those of a killed node moved.
    assert set(report.sessions_per_node) == {"chaos-a", "chaos-b"}, table
    assert min(report.sessions_per_node.values()) >= config.clients // 2, table
    assert report.clients_moved >= 1, table
