"""Run the gateway on uvicorn (uvloop, the websockets Sans-I/O protocol): ``chatd serve``.

The caller owns the store (opened before, closed after) and the event loop (``chatd serve``
runs on uvloop).  We bind the listening socket ourselves so that ``CHATD_PORT=0`` picks a free
port, and print one line ``chatd listening on <url>`` once it is bound (tests read it).

WebSocket settings: frames larger than ``CHATD_MAX_FRAME_BYTES`` are refused by the protocol
layer with close 1009; keepalive pings every ``CHATD_WS_PING_SECONDS`` (a peer that does not
answer within as long is dropped); per-message compression is off (mixing secrets and
attacker-chosen text in one compression context is a known side channel, and the frames are
small msgpack).

The edge (:mod:`chatd.gateway.edges`): at most ``CHATD_MAX_CONNECTIONS`` open connections,
HTTP and WebSocket, the longest-idle one closed at the cap; a request head must come within
``CHATD_HTTP_HEAD_SECONDS`` with no silence longer than ``CHATD_HTTP_IDLE_SECONDS``.  At
start the process raises its open-file limit (``RLIMIT_NOFILE``) to the hard limit, and
lowers the cap if that still leaves too few descriptors for the store and uploads.
"""

from __future__ import annotations

import logging
import resource
import signal
import socket
import sys
from collections.abc import Callable

import uvicorn

from chatd.config import Settings
from chatd.gateway.admission import HeadDeadlines
from chatd.gateway.app import create_app
from chatd.gateway.context import Gateway
from chatd.gateway.edges import guarded_protocol
from chatd.i18n import DEFAULT_LANGUAGE, language

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


# Descriptors kept for what is not a connection: the database and its WAL, the key file,
# uploads being spooled and sealed, downloads, the event loop's own.
RESERVED_FILES = 256
MIN_CONNECTIONS = 2
UNLIMITED_FILES = 1 << 20


def raise_open_files_limit() -> int:
    """Raise the soft ``RLIMIT_NOFILE`` to the hard limit; return the soft limit now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    # "unlimited" is refused for NOFILE by some kernels: ask for a large finite number then.
    target = hard if hard != resource.RLIM_INFINITY else UNLIMITED_FILES
    if soft == resource.RLIM_INFINITY:
        return UNLIMITED_FILES
    if soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as exc:
            log.warning("could not raise the open-file limit from %d to %d: %s", soft, target, exc)
    return soft


def connection_cap(wanted: int, open_files: int) -> int:
    """``CHATD_MAX_CONNECTIONS``, lowered to what ``open_files`` descriptors can hold."""
    return max(MIN_CONNECTIONS, min(wanted, open_files - RESERVED_FILES))


def uvicorn_config(
    settings: Settings, gateway: Gateway, *, open_files: int | None = None
) -> uvicorn.Config:
    listen = settings.gateway
    ping = float(listen.ws_ping_seconds) or None
    cap = listen.max_connections
    if open_files is not None:
        cap = connection_cap(cap, open_files)
        if cap < listen.max_connections:
            log.warning(
                "CHATD_MAX_CONNECTIONS lowered from %d to %d: the process may open %d files",
                listen.max_connections,
                cap,
                open_files,
            )
    protocol = guarded_protocol(
        max_connections=cap,
        deadlines=HeadDeadlines(listen.http_idle_seconds, listen.http_head_seconds),
        lang=language(settings.accounts.default_language) or DEFAULT_LANGUAGE,
    )
    return uvicorn.Config(
        create_app(gateway),
        loop="none",  # the caller runs us on uvloop already
        http=protocol,  # h11 under the connection cap and head deadlines
        timeout_keep_alive=listen.http_idle_seconds,
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
    open_files = raise_open_files_limit()
    log.info("open-file limit: %d", open_files)
    server = _Server(uvicorn_config(settings, gateway, open_files=open_files), gateway)
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


class _Server(uvicorn.Server):
    """uvicorn's server, which tells the gateway as soon as the shutdown begins: uvicorn
    waits (up to 5 s) for requests in flight before the lifespan's shutdown, and an upload
    waiting for its image worker would hold that wait up; halted, it is answered at once."""

    def __init__(self, config: uvicorn.Config, gateway: Gateway) -> None:
        super().__init__(config)
        self._gateway = gateway

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self._gateway.halt()
        await super().shutdown(sockets=sockets)


def _ignore(signum: int, frame: object) -> None:
    """uvicorn's re-raise of the stop signal, once the shutdown is done."""


def _print(line: str) -> None:
    print(line, flush=True)
