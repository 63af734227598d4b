"""Short chaos runs against a real ``chatd serve`` (default FULL durability), for CI.

``test_kill9_drops_slow_consumer_churn``: about 30 s of ~200 messages/s from 24 real
WebSocket clients in 8 conversations while the server is killed with SIGKILL every 2–5 s
(random, seeded) and restarted on the same data directory and port, connections are cut at
random, one client keeps stopping to read, and members leave and are added back.  Then every
client resumes, every user reads everything afresh, ``chatd verify`` runs, and the checker
compares what clients were told with the log: nothing may be lost, duplicated, leaked or
missing (``bench/chaos_harness/checker.py`` defines each count).

``test_slow_consumer_is_closed_and_resumes``: the server's outbound queue for a reader that
stopped reading must overflow and the server must let go of it, and the reader must resume
without a gap.  Getting there needs megabytes queued (the loopback socket buffers absorb
~4 MB first), so this run uses large messages and a small queue (``CHATD_WS_QUEUE=50``), and
neither kills nor drops, which would cut the slow connection first.  The client sees 4005
only if the close frame got through: a reader that does not read cannot get it, and after
its close timeout (5 s) the server aborts the connection instead — the client then sees
1006.  Either is the server letting go; both are accepted.

The seed is fixed and printed (``CHAOS_SEED`` overrides it); a failing run's table, data
directory (``chatd.sqlite3``, ``master.keys``, ``server.log``) and history (JSON lines) are
under pytest's ``tmp_path``.
"""

from __future__ import annotations

import os
from pathlib import Path

from bench.chaos_harness.client import ClientConfig
from bench.chaos_harness.runner import ChaosConfig, Report, run_chaos

SEED = int(os.environ.get("CHAOS_SEED", "20260101"))


def _show(report: Report, where: Path) -> str:
    table = report.table()
    print(f"\nchaos seed {report.config.seed}, data in {where}\n{table}")
    return table


async def test_kill9_drops_slow_consumer_churn(tmp_path: Path) -> None:
    config = ChaosConfig(
        duration=30,
        clients=24,
        conversations=8,
        convs_per_user=3,
        rate=200,
        seed=SEED,
        kill=True,
        kill_every=(2.0, 5.0),
        drops=True,
        slow=True,
        churn=True,
        storm=False,
        workdir=tmp_path / "run",
        history_out=tmp_path / "history.jsonl",
    )
    report = await run_chaos(config)
    table = _show(report, tmp_path)
    assert report.ok, table
    r = report.result
    assert (r.lost, r.duplicated, r.leaked, r.gaps) == (0, 0, 0, 0), table
    assert report.verify_code == 0, report.verify_output
    # The faults did happen, and the load was real.
    # Kills come every 2-5 s once the server is back; on a loaded machine a restart takes
    # seconds, so 30 s may hold only a few: three still make the fault real.
    assert report.kills >= 3, table
    assert report.drops >= 5, table
    assert report.joins + report.leaves >= 5, table
    assert r.acked >= 2000, table
    assert r.received > r.acked, table


async def test_slow_consumer_is_closed_and_resumes(tmp_path: Path) -> None:
    config = ChaosConfig(
        duration=12,
        clients=12,
        conversations=4,
        convs_per_user=2,
        rate=100,
        text_bytes=19_000,
        seed=SEED,
        kill=False,
        drops=False,
        slow=True,
        churn=True,
        storm=False,
        server_env=(("CHATD_WS_QUEUE", "50"),),
        # ~1.9 MB/s reach the slow reader: ~5 MB fill the socket buffers and the queue of
        # 50 in about 3 s; a pause of 7-9 s leaves a wide margin on a loaded machine.
        client=ClientConfig(slow_read=(0.5, 1.0), slow_pause=(7.0, 9.0)),
        workdir=tmp_path / "run",
        history_out=tmp_path / "history.jsonl",
    )
    report = await run_chaos(config)
    table = _show(report, tmp_path)
    assert report.ok, table
    # With no kill and no drop, only the server can have closed the slow reader's connection.
    assert report.slow_closes[4005] + report.slow_closes[1006] >= 1, table
