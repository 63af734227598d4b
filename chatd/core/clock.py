"""The one millisecond clock: wall-clock time, as every stored timestamp counts it."""

from __future__ import annotations

import time


def wall_clock_ms() -> int:
    """Milliseconds since the Unix epoch."""
    return time.time_ns() // 1_000_000
