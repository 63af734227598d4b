"""chatd-cli against real servers: the gateway suite's ``chatd serve`` fixtures, and users
whose CLI config directory (``CHATD_CLI_CONFIG_DIR``) holds a session for them.

Commands run as real subprocesses (the ``chatd-cli`` console script).  Long-running ones
(``watch``, ``send`` waiting for a server) are :class:`Running` processes whose output lines
are collected by reader threads, so that tests wait on a line with a timeout — never sleep.

chatd-cli speaks French unless told otherwise: these processes run in an English terminal
(``LANG=en_GB.UTF-8``, whatever the shell running the tests says) so that the suite reads the
English sentences; ``test_french`` runs them in a French one.  In-process tests get English
too (:func:`english`).
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import pexpect
import pyte
import pytest

from clients.cli import config
from clients.cli.i18n import VOICE
from tests.gateway import conftest as gateway
from tests.gateway.conftest import (
    HOUR_MS,
    LENIENT,
    Account,
    Admin,
    start_server,
    stop_server,
)

# The gateway suite's fixtures, used here as they are: a real server per session, its admin.
server = gateway.server
password_hash = gateway.password_hash
admin = gateway.admin

CLI = Path(sys.executable).with_name("chatd-cli")
TIMEOUT = 20.0


LOCALE_VARIABLES = ("LC_ALL", "LC_MESSAGES", "LANG", "LANGUAGE")
ENGLISH = "en_GB.UTF-8"
FRENCH = "fr_FR.UTF-8"


def cli_env(config_dir: Path, server_url: str, **extra: str) -> dict[str, str]:
    """The environment of a chatd-cli process: its own config dir and server, an English
    terminal unless ``extra`` says otherwise (``LANG=FRENCH``)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CHATD_", "XDG_")) and k not in LOCALE_VARIABLES
    }
    env.update(
        CHATD_CLI_CONFIG_DIR=str(config_dir),
        CHATD_CLI_SERVER=server_url,
        CHATD_CLI_MAX_BACKOFF="1",  # reconnect quickly after a server restart
        PYTHONUNBUFFERED="1",
        PYTHONFAULTHANDLER="1",  # a client stuck past a deadline is made to show its stack
    )
    env.update({"LANG": ENGLISH, **extra})
    return env


@pytest.fixture(autouse=True)
def english() -> Iterator[None]:
    """In-process tests read English, whatever the terminal running them speaks."""
    before = VOICE.lang
    VOICE.use("en")
    yield
    VOICE.use(before)


def write_session(
    config_dir: Path, server_url: str, account: Account, expires_at: int, first_name: str
) -> None:
    """What ``chatd-cli login`` leaves behind, for a token minted by the test (cheaper than
    an Argon2id login per user; ``test_auth`` covers the real thing)."""
    previous = os.environ.get(config.ENV_CONFIG_DIR)
    os.environ[config.ENV_CONFIG_DIR] = str(config_dir)
    try:
        user = {"id": account.id, "login": account.login, "first_name": first_name}
        user |= {"last_name": "Test", "profession": "Infirmière", "structure": "CH Test"}
        config.save_session(config.Session(server_url, account.token, expires_at, user))
    finally:
        if previous is None:
            del os.environ[config.ENV_CONFIG_DIR]
        else:
            os.environ[config.ENV_CONFIG_DIR] = previous


def run_cli(
    env: dict[str, str],
    *args: str,
    stdin: str = "",
    timeout: float = TIMEOUT,
    as_module: bool = False,
) -> subprocess.CompletedProcess[str]:
    """One chatd-cli command to its end (``as_module``: ``python -m clients.cli``)."""
    program = [sys.executable, "-m", "clients.cli"] if as_module else [str(CLI)]
    return subprocess.run(
        [*program, *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
        start_new_session=True,  # no controlling terminal: prompts read stdin
    )


class Running:
    """A chatd-cli process still running; its stdout and stderr lines as they come."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self._lines: queue.Queue[None] = queue.Queue()
        self._lock = threading.Lock()
        for stream, sink in ((proc.stdout, self.stdout), (proc.stderr, self.stderr)):
            assert stream is not None
            threading.Thread(target=self._pump, args=(stream, sink), daemon=True).start()

    def _pump(self, stream: IO[str], sink: list[str]) -> None:
        for line in stream:
            with self._lock:
                sink.append(line.rstrip("\n"))
            self._lines.put(None)
        self._lines.put(None)

    def wait_for(self, predicate: Callable[[], bool], what: str, timeout: float = TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(
                    f"timed out waiting for {what}\nstdout: {self.stdout}\nstderr: {self.stderr}"
                )
            with contextlib.suppress(queue.Empty):
                self._lines.get(timeout=min(left, 0.5))

    def wait_stdout(self, needle: str, timeout: float = TIMEOUT) -> str:
        self.wait_for(lambda: any(needle in line for line in self.stdout), repr(needle), timeout)
        return next(line for line in self.stdout if needle in line)

    def wait_stderr(self, needle: str, timeout: float = TIMEOUT) -> None:
        self.wait_for(lambda: any(needle in line for line in self.stderr), repr(needle), timeout)

    def json_lines(self) -> list[dict[str, Any]]:
        with self._lock:
            return [json.loads(line) for line in self.stdout if line.startswith("{")]

    def interrupt(self, timeout: float = TIMEOUT) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.show_stack()
            raise AssertionError(
                f"chatd-cli still running {timeout:g} s after Ctrl-C\nstderr: {self.stderr}"
            ) from None

    def show_stack(self) -> None:
        """SIGABRT: faulthandler prints every thread's stack to stderr, collected above."""
        self.proc.send_signal(signal.SIGABRT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)
        with contextlib.suppress(AssertionError):
            self.wait_for(lambda: any("Fatal Python" in x for x in self.stderr), "a stack", 5)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@dataclass
class CliUser:
    account: Account
    config_dir: Path
    server_url: str
    running: list[Running] = field(default_factory=list)
    lang: str = ENGLISH  # the terminal's LANG

    @property
    def login(self) -> str:
        return self.account.login

    def env(self, **extra: str) -> dict[str, str]:
        return cli_env(self.config_dir, self.server_url, **{"LANG": self.lang, **extra})

    def run(
        self, *args: str, stdin: str = "", timeout: float = TIMEOUT, **env: str
    ) -> subprocess.CompletedProcess[str]:
        """``env``: more variables (``LANG=FRENCH``, ``TZ=…``) for this run."""
        return run_cli(self.env(**env), *args, stdin=stdin, timeout=timeout)

    def ok(self, *args: str, stdin: str = "", **env: str) -> subprocess.CompletedProcess[str]:
        result = self.run(*args, stdin=stdin, **env)
        assert result.returncode == 0, (args, result.stdout, result.stderr)
        return result

    def json(self, *args: str, stdin: str = "") -> list[dict[str, Any]]:
        result = self.ok(*args, "--json", stdin=stdin)
        return [json.loads(line) for line in result.stdout.splitlines()]

    def start(self, *args: str, sigint_ignored: bool = False) -> Running:
        """``sigint_ignored``: start it as a script's background job is started (``cmd &``
        in a non-interactive shell): with SIGINT ignored."""
        proc = subprocess.Popen(
            [str(CLI), *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self.env(),
            start_new_session=True,
            preexec_fn=_ignore_sigint if sigint_ignored else None,
        )
        running = Running(proc)
        self.running.append(running)
        return running

    def watch(self, *args: str) -> Running:
        """``watch --json``, once it is connected and synced."""
        running = self.start("watch", "--json", *args)
        running.wait_stderr("Watching")
        return running


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


MakeUser = Callable[..., Any]


@pytest.fixture
async def cli_user(
    admin: Admin, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[MakeUser]:
    """``await cli_user()``: a new account, logged in for chatd-cli in its own config dir."""
    made: list[CliUser] = []

    async def make(
        first_name: str = "Alice",
        *,
        on: Admin | None = None,
        server_url: str | None = None,
        expires_in_ms: int = 8 * HOUR_MS,
    ) -> CliUser:
        """``on``: another server's admin; ``server_url``: cache the session for that URL;
        ``expires_in_ms``: when the cached session says it expires."""
        maker = on or admin
        account = await maker.user(first_name=first_name)
        url = server_url or maker.server.base_url
        user = CliUser(account, tmp_path_factory.mktemp("cli"), url)
        now = time.time_ns() // 1_000_000
        write_session(user.config_dir, url, account, now + expires_in_ms, first_name)
        made.append(user)
        return user

    yield make
    for user in made:
        for running in user.running:
            running.kill()


# ----------------------------------------------------------------------------- a terminal


class _Screen(pyte.Screen):
    """A screen that answers the terminal's queries (cursor position) like a real one."""

    def __init__(self, columns: int, lines: int, answer: Callable[[str], None]) -> None:
        super().__init__(columns, lines)
        self._answer = answer

    def write_process_input(self, data: str) -> None:
        self._answer(data)


class Terminal:
    """chatd-cli in a pseudo-terminal, its screen kept by a terminal emulator: tests read
    what a person would see, whatever escape sequences drew it."""

    def __init__(self, args: list[str], env: dict[str, str], rows: int = 24, cols: int = 100):
        env = {**env, "TERM": "xterm-256color"}
        self.child = pexpect.spawn(str(CLI), args, env=env, dimensions=(rows, cols))
        self.screen = _Screen(cols, rows, lambda data: self.child.send(data.encode()))
        self.stream = pyte.ByteStream(self.screen)
        self.output = b""
        self.ended = False

    def _pump(self, timeout: float) -> None:
        try:
            data = self.child.read_nonblocking(65536, timeout=timeout)
        except pexpect.TIMEOUT:
            return
        except pexpect.EOF:
            self.ended = True
            return
        self.output += data
        self.stream.feed(data)

    def text(self) -> str:
        return "\n".join(line.rstrip() for line in self.screen.display)

    def wait(self, needle: str, timeout: float = TIMEOUT) -> str:
        """Until ``needle`` is on the screen; the screen."""
        deadline = time.monotonic() + timeout
        while needle not in self.text():
            if self.ended or time.monotonic() > deadline:
                raise AssertionError(f"{needle!r} never appeared on the screen:\n{self.text()}")
            self._pump(0.2)
        return self.text()

    def type(self, text: str) -> None:
        self.child.send(text.encode())

    def wait_exit(self, timeout: float = TIMEOUT) -> int:
        deadline = time.monotonic() + timeout
        while not self.ended:
            if time.monotonic() > deadline:
                raise AssertionError(f"chatd-cli did not exit:\n{self.text()}")
            self._pump(0.2)
        self.child.close()
        return int(self.child.exitstatus if self.child.exitstatus is not None else -1)

    def kill(self) -> None:
        if self.child.isalive():
            self.child.kill(signal.SIGKILL)
        self.child.close(force=True)


# ----------------------------------------------------------------------------- a server to kill


class Restartable:
    """A server of its own, to SIGSTOP, SIGKILL and restart on the same data dir and port."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.server = start_server(tmp, LENIENT)
        self.port = self.server.base_url.rsplit(":", 1)[1]

    def freeze(self) -> None:
        self.server.proc.send_signal(signal.SIGSTOP)

    def kill(self) -> None:
        self.server.proc.send_signal(signal.SIGKILL)  # also ends a stopped process
        self.server.proc.wait(TIMEOUT)

    def restart(self) -> None:
        self.server = start_server(self.tmp, {**LENIENT, "CHATD_PORT": self.port})


@pytest.fixture(scope="module")
def restartable_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Restartable]:
    """One per module: each test leaves it running (restarted if it killed it)."""
    r = Restartable(tmp_path_factory.mktemp("restartable"))
    yield r
    if r.server.proc.poll() is None:
        r.server.proc.send_signal(signal.SIGCONT)
        stop_server(r.server)


@pytest.fixture
async def restartable(
    restartable_server: Restartable, password_hash: str
) -> AsyncIterator[tuple[Restartable, Admin]]:
    r = restartable_server
    if r.server.proc.poll() is not None:  # a failed test left it dead
        r.restart()
    store = r.server.store()
    await store.open()
    admin = Admin(r.server, store, password_hash)
    try:
        yield r, admin
    finally:
        await admin.close()
        r.server.proc.send_signal(signal.SIGCONT)  # a failed test may have left it frozen
