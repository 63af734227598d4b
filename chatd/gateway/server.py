"""Run the gateway on uvicorn (uvloop, the websockets Sans-I/O protocol): ``chatd serve``.

The caller owns the store (opened before, closed after) and the event loop (``chatd serve``
runs on uvloop).  We bind the listening socket ourselves so that ``CHATD_PORT=0`` picks a free
port, and print one line ``chatd listening on <url>`` once it is bound (tests read it).

WebSocket settings: frames larger than ``CHATD_MAX_FRAME_BYTES`` are refused by the protocol
layer with close 1009; keepalive pings every ``CHATD_WS_PING_SECONDS`` (a peer that does not
answer within as long is dropped); per-message compression is off (mixing secrets and
attacker-chosen text in one compression context is a known side channel, and the frames are
small msgpack).
"""

from __future__ import annotations

import logging
import signal
import socket
import sys
from collections.abc import Callable

import uvicorn

from chatd.config import Settings
from chatd.gateway.app import create_app
from chatd.gateway.context import Gateway

log = logging.getLogger("chatd.gateway")

# CHATD_DEBUG turns on chatd's own debug output only.  These libraries' debug output holds
# what chatd never logs: aiosqlite writes every statement with its parameters (a login as
# typed, which may be a password typed in the wrong field), the WebSocket protocol (through
# uvicorn's logger) the first and last bytes of every frame (tokens, message texts).
QUIET_LIBRARIES = ("aiosqlite", "websockets", "uvicorn", "uvicorn.error", "uvicorn.access")


def quiet_libraries() -> None:
    """Cap the libraries' loggers at INFO, whatever the root level."""
    for name in QUIET_LIBRARIES:
        logger = logging.getLogger(name)
        if logger.getEffectiveLevel() < logging.INFO:
            logger.setLevel(logging.INFO)


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


def uvicorn_config(settings: Settings, gateway: Gateway) -> uvicorn.Config:
    listen = settings.gateway
    ping = float(listen.ws_ping_seconds) or None
    return uvicorn.Config(
        create_app(gateway),
        loop="none",  # the caller runs us on uvloop already
        ws="websockets-sansio",
        ws_max_size=listen.max_frame_bytes,
        ws_ping_interval=ping,
        ws_ping_timeout=ping,
        ws_per_message_deflate=False,
        lifespan="on",
        log_level="info",  # even with CHATD_DEBUG: see QUIET_LIBRARIES
        access_log=settings.debug,
        server_header=False,
        proxy_headers=False,
        timeout_graceful_shutdown=5,
        ssl_certfile=None if listen.tls_cert_file is None else str(listen.tls_cert_file),
        ssl_keyfile=None if listen.tls_key_file is None else str(listen.tls_key_file),
    )


async def serve(
    settings: Settings, gateway: Gateway, *, announce: Callable[[str], None] | None = None
) -> None:
    """Serve until SIGINT/SIGTERM, then shut down gracefully (sockets get close 1012)."""
    logging.basicConfig(
        level=logging.DEBUG if settings.debug else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    quiet_libraries()
    purged = await gateway.auth.purge_expired_tokens()
    if purged:
        log.info("purged %d expired login tokens", purged)
    server = uvicorn.Server(uvicorn_config(settings, gateway))
    sock = bind(settings.gateway.host, settings.gateway.port)
    host, port = sock.getsockname()[:2]
    scheme = "https" if settings.gateway.tls_cert_file else "http"
    shown = f"[{host}]" if ":" in host else host
    (announce or _print)(f"chatd listening on {scheme}://{shown}:{port}")
    # uvicorn catches SIGINT and SIGTERM, shuts down (sockets get 1012), then re-raises the
    # signal it caught with the handlers it found.  Both must then be no-ops: a re-raised
    # SIGINT would be a KeyboardInterrupt thrown into this coroutine, which stops the event
    # loop under the store's writer (a CancelledError traceback) and leaves its SQLite
    # thread waiting forever: the process hung with its port closed.  Returning normally
    # lets the caller drain the writer and close the store, and the process exit 0.
    previous = {sig: signal.signal(sig, _ignore) for sig in STOP_SIGNALS}
    try:
        await server.serve(sockets=[sock])
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        sock.close()
    log.info("chatd stopped")


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _ignore(signum: int, frame: object) -> None:
    """uvicorn's re-raise of the stop signal, once the shutdown is done."""


def _print(line: str) -> None:
    print(line, flush=True)
