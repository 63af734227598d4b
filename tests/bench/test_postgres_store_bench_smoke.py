"""The PostgreSQL store benchmark runs, small, on the test server: its measures are real
(appends acked by two nodes, a ceiling), so ``docs/performance.md`` can quote them."""

from __future__ import annotations

from pathlib import Path

from bench.postgres_store_bench import bench_appends, bench_ceiling
from tests.servers.postgres import PostgresServer


async def test_the_ceiling_and_two_nodes_appending_are_measured(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    assert await bench_ceiling(postgres_server, tmp_path, transactions=3) > 0
    rate, replans = await bench_appends(postgres_server, tmp_path, 4, 40, nodes=2, shared=True)
    assert rate > 0 and replans >= 0
