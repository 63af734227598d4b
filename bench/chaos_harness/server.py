"""A ``chatd serve`` subprocess that the nemesis may kill with SIGKILL and restart.

The first start binds a free port (``CHATD_PORT=0``, read back from the ``chatd listening
on`` line); every restart uses the same data directory and the same port (the server binds
with ``SO_REUSEADDR``, so connections of the killed process left in TIME_WAIT do not block
it).  ``CHATD_SQLITE_SYNCHRONOUS`` is never set: the default, FULL, is what is being tested.
All incarnations append to one log file.  While a process runs, its resident set size
(``VmRSS`` in ``/proc/<pid>/status``) is sampled; the maximum over the run is reported.

Users and their sessions are created before the first start by chatd's own account and auth
services (:mod:`bench.accounts`), with no password login, so no Argon2id hashing is paid.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path

from bench.accounts import Account, seed_accounts
from chatd.core.records import UserProfile

__all__ = ["Account", "ChaosServer", "chatd_env", "create_accounts"]

TERMS = "chaos-terms-1"
START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0
RSS_EVERY = 0.2
LOG_RECORD = re.compile(r"\d{4}-\d\d-\d\d [\d:,]+ ([A-Z]+) ")  # chatd's log format
UVICORN_RECORD = re.compile(r"([A-Z]+):\s")  # uvicorn's: "INFO:     connection open"


def chatd_env(data_dir: Path, extra: Mapping[str, str]) -> dict[str, str]:
    """The environment of a ``chatd`` subprocess: no inherited ``CHATD_*`` variable."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHATD_")}
    env["CHATD_DATA_DIR"] = str(data_dir)
    env["CHATD_TERMS_VERSION"] = TERMS
    env.update(extra)
    if "CHATD_SQLITE_SYNCHRONOUS" in env:
        raise ValueError("chaos runs keep the default CHATD_SQLITE_SYNCHRONOUS (FULL)")
    return env


async def create_accounts(data_dir: Path, count: int) -> list[Account]:
    """Create the key file, the database and ``count`` users with a session each (8 h),
    through chatd's own services (:mod:`bench.accounts`).  Run before the server starts."""
    tag = uuid.uuid4().hex[:6]
    return await seed_accounts(
        data_dir,
        TERMS,
        [f"chaos{tag}{i}" for i in range(count)],
        UserProfile("User", "Chaos", "Infirmière", "CH Chaos"),
    )


class ChaosServer:
    def __init__(
        self,
        workdir: Path,
        extra_env: Mapping[str, str] | None = None,
        *,
        profile: Path | None = None,
        data_dir: Path | None = None,
    ) -> None:
        self.workdir = workdir
        # cProfile the server (each incarnation overwrites the file; written at SIGTERM).
        self._python_args = ("-m", "cProfile", "-o", str(profile)) if profile else ()
        self.data_dir = data_dir or workdir / "var"  # a cluster's nodes share theirs
        self.log_path = workdir / "server.log"
        self._extra = dict(extra_env or {})
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.kills = 0
        self.max_rss_kb = 0
        self.exit_codes: list[int] = []
        self._sampler: asyncio.Task[None] | None = None

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v1/ws"

    def urls_for(self, client: int) -> tuple[str, ...]:
        """The URLs a client connects to (one node: this one)."""
        del client
        return (self.ws_url,)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def env(self) -> dict[str, str]:
        return chatd_env(self.data_dir, {"CHATD_PORT": str(self.port), **self._extra})

    def store_env(self) -> dict[str, str]:
        """The settings of an offline tool on the same data (``chatd verify``, the log
        read for the ground truth)."""
        return chatd_env(self.data_dir, self._extra)

    async def start(self) -> None:
        """Start an incarnation and wait until it answers ``/healthz``."""
        assert not self.running
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log:
            log.write(f"\n==== chaos: start #{self.starts + 1} ====\n".encode())
            log.flush()
            self.proc = subprocess.Popen(  # noqa: ASYNC220 - returns at once
                [sys.executable, *self._python_args, "-m", "chatd", "serve"],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env(),
                cwd=self.workdir,
            )
        self.starts += 1
        if self._sampler is None:
            self._sampler = asyncio.get_running_loop().create_task(self._sample_rss())
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            text = self._log_from(offset)
            match = re.search(r"chatd listening on http://127\.0\.0\.1:(\d+)", text)
            if match:
                port = int(match.group(1))
                assert self.port in (0, port), (self.port, port)
                self.port = port
                break
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"chatd serve did not start:\n{text[-4000:]}")
            await asyncio.sleep(0.02)
        while not await self._healthy():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"chatd serve never became healthy:\n{self._log_from(offset)}")
            await asyncio.sleep(0.02)

    def _log_from(self, offset: int) -> str:
        with self.log_path.open("rb") as log:
            log.seek(offset)
            return log.read().decode(errors="replace")

    async def _healthy(self) -> bool:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", self.port), 2
            )
        except (OSError, TimeoutError):
            return False
        try:
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            status = await asyncio.wait_for(reader.readline(), 2)
            return b" 200 " in status
        except (OSError, TimeoutError):
            return False
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    def kill9(self) -> None:
        """SIGKILL the running incarnation (no shutdown, no flush: a crash)."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.kills += 1

    async def wait_exit(self, within: float) -> int:
        assert self.proc is not None
        deadline = time.monotonic() + within
        while (code := self.proc.poll()) is None:
            if time.monotonic() > deadline:
                self.proc.kill()
                raise RuntimeError("chatd serve did not exit")
            await asyncio.sleep(0.01)
        self.exit_codes.append(code)
        return code

    async def crash_and_restart(self, on_kill: Callable[[str], None] | None = None) -> float:
        """kill -9, then start again on the same data dir and port; seconds it was down.
        ``on_kill`` is told which process is about to be killed (the history's record)."""
        if on_kill is not None:
            on_kill(f"pid {self.pid}")
        started = time.monotonic()
        self.kill9()
        await self.wait_exit(10)
        await self.start()
        return time.monotonic() - started

    async def stop(self) -> int:
        """SIGTERM (graceful); the exit code."""
        if not self.running:
            return self.exit_codes[-1] if self.exit_codes else 0
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        code = await self.wait_exit(STOP_TIMEOUT)
        if self._sampler is not None:
            self._sampler.cancel()
            await asyncio.gather(self._sampler, return_exceptions=True)
            self._sampler = None
        return code

    def force_stop(self) -> None:
        """Last resort (a harness error): never leave a server behind."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        if self._sampler is not None:
            self._sampler.cancel()

    async def _sample_rss(self) -> None:
        while True:
            if self.proc is not None and self.proc.poll() is None:
                self.max_rss_kb = max(self.max_rss_kb, rss_kb(self.proc.pid))
            await asyncio.sleep(RSS_EVERY)

    def log_problems(self) -> list[str]:
        """Lines of the log that show a server bug: an internal error, an ERROR record, a
        traceback — except one printed with a WARNING record (asyncpg's pool says "Failed to
        restore the pool connection floor; retrying" with its traceback while PostgreSQL
        restarts: an outage the warning reports, not a bug)."""
        if not self.log_path.exists():
            return []
        problems: list[str] = []
        level = ""  # the level of the last log record seen: a traceback belongs to it
        for line in self.log_path.read_text(errors="replace").splitlines():
            record = LOG_RECORD.match(line) or UVICORN_RECORD.match(line)
            if record:
                level = record.group(1)
            bug = "internal error" in line or " ERROR " in line
            if bug or ("Traceback" in line and level not in ("WARNING", "INFO", "DEBUG")):
                problems.append(line)
        return problems

    def verify(self) -> tuple[int, str]:
        """``chatd verify`` on the data directory (server stopped): exit code and output."""
        done = subprocess.run(
            [sys.executable, "-m", "chatd", "verify"],
            capture_output=True,
            text=True,
            env=self.store_env(),
            timeout=600,
            check=False,
        )
        return done.returncode, (done.stdout + done.stderr).strip()


def rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0
