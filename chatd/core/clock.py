"""The one clock of chatd: milliseconds since the Unix epoch, as a plain function.

Every component that needs the time (the store's writer, sessions, retention, the gateway)
takes a :data:`Clock` rather than reading the system clock itself, so that tests can pin
time: pass ``lambda: 1_700_000_000_000``, or a counter they move by hand.  Production passes
:func:`wall_clock_ms`.
"""

from __future__ import annotations

import time
from collections.abc import Callable

Clock = Callable[[], int]  # milliseconds since the Unix epoch


def wall_clock_ms() -> int:
    """The system's wall clock, in whole milliseconds since the Unix epoch."""
    return time.time_ns() // 1_000_000
