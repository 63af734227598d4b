"""What the gateway logs of an unexpected exception: its type and stack, never its message.

An exception's message may quote what it was working on (a message text, a file name, a
token), so every transport — the WebSocket connection, the HTTP routes, the attachment
streams — logs through this one function.  The client only ever sees ``internal_error``.
"""

from __future__ import annotations

import logging
import traceback

log = logging.getLogger("chatd.gateway")


def log_internal(where: str, exc: BaseException) -> None:
    """Log an unexpected exception by type and stack only (its message may hold content)."""
    stack = "".join(traceback.format_tb(exc.__traceback__))
    log.error("internal error in %s: %s\n%s", where, type(exc).__name__, stack)
