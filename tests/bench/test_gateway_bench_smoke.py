"""The gateway benchmark's own accounting, at a tiny scale (a few seconds).

Runs the benchmark's scenario functions for real — a ``chatd serve`` subprocess, the bare
Starlette ceiling server, a spawned load process — with 4 clients in 2 conversations, and
checks that what the load generator counted adds up: every send was answered, and every
acked message reached every member of its conversation exactly once (deliveries = acked ×
members).  A benchmark that miscounts would report fiction.  (Whether the machine was quiet enough
for the figures to mean anything is the benchmark's ``warnings``, not checked here.)
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import gateway_bench as gb

CLIENTS = 4
CONV_SIZE = 2  # 4 clients over 2 conversations


def _check(result: gb.RunResult) -> None:
    load = result.load
    assert result.problems == [], result.problems
    assert load.connected == CLIENTS and load.connect_failures == 0
    assert load.sent > 0 and load.errors == {}
    assert load.acked == load.sent
    assert load.deliveries == load.sent * CONV_SIZE
    assert load.expected_deliveries == load.deliveries
    assert load.stray_deliveries == load.duplicate_deliveries == 0
    assert load.drained
    assert result.accounting_ok
    assert 0 < load.window_deliveries <= load.deliveries
    assert load.deliver_ms and min(load.deliver_ms) >= 0


@pytest.mark.parametrize("target", gb.TARGETS)
def test_throughput_accounting(tmp_path: Path, target: str) -> None:
    result = gb.run_throughput(
        target, tmp_path, clients=CLIENTS, conv_size=CONV_SIZE, warmup=0.2, duration=1.0
    )
    _check(result)
    assert len(result.load.ack_ms) > 0


def test_latency_accounting(tmp_path: Path) -> None:
    result = gb.run_latency(
        "chatd",
        tmp_path,
        clients=CLIENTS,
        conv_size=CONV_SIZE,
        rate=40.0,
        warmup=0.2,
        duration=1.0,
    )
    _check(result)
    # Open loop: the offered count is exact (40 msg/s over warm-up + window).
    assert result.load.sent == int(40.0 * (0.2 + 1.0))
