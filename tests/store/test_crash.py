"""Ack means durable: a writer killed with SIGKILL at random moments loses no acknowledged
append, leaves no gap, and the database still verifies."""

from __future__ import annotations

import asyncio
import os
import queue
import random
import signal
import subprocess
import sys
import threading
from pathlib import Path

from chatd.core.events import EventKind
from chatd.crypto.keyring import KeyRing, write_key_file
from chatd.store.sqlite import SqliteStore
from tests.conftest import chatd_env, create_conv, make_users, post, run_chatd
from tests.store.crash_child import text_of

CHILD = Path(__file__).with_name("crash_child.py")
CYCLES = 5
TIMEOUT = 20.0  # seconds to wait for any one line of the child


class Child:
    """The child process, with a thread turning its stdout into a queue of lines."""

    def __init__(self, data_dir: Path, cycle: int, targets: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(CHILD), str(data_dir), str(cycle), targets],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=chatd_env(data_dir),
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.endswith("\n"):  # a line cut by the kill was never complete
                self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def next_line(self) -> str:
        line = self.lines.get(timeout=TIMEOUT)
        if line is None:
            assert self.proc.stderr is not None
            raise AssertionError(f"child ended early: {self.proc.stderr.read()}")
        return line

    def kill_and_drain(self) -> list[str]:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=TIMEOUT)
        self._reader.join(timeout=TIMEOUT)
        rest = []
        while (line := self.lines.get_nowait()) is not None:
            rest.append(line)
        assert self.proc.stderr is not None
        self.proc.stderr.close()
        return rest


async def test_acknowledged_appends_survive_sigkill(tmp_path: Path) -> None:
    ring = KeyRing.generate()
    write_key_file(tmp_path / "master.keys", ring, replace=False)
    db = tmp_path / "chatd.sqlite3"
    async with SqliteStore(db, ring) as store:
        alice, bob, carol = await make_users(store, "alice", "bob", "carol")
        convs = [(await create_conv(store, alice, [bob, carol])).conv_id for _ in range(3)]
    targets = ",".join(f"{sender}:{conv}" for conv in convs for sender in (alice, bob))

    rng = random.Random(20260101)
    acked: list[tuple[int, int, str, int]] = []
    for cycle in range(CYCLES):
        child = Child(tmp_path, cycle, targets)
        try:
            assert child.next_line() == "ready"
            wanted = rng.choice([1, 10, rng.randint(20, 400)])
            lines = [child.next_line() for _ in range(wanted)]
            lines += child.kill_and_drain()
        finally:
            if child.proc.poll() is None:  # a failed wait must not leave the child running
                child.proc.kill()
                child.proc.wait(timeout=TIMEOUT)
        assert child.proc.returncode == -signal.SIGKILL, "the child was not killed mid-run"
        for line in lines:
            conv, seq, client_msg_id, sender = line.split()
            acked.append((int(conv), int(seq), client_msg_id, int(sender)))
    assert len(acked) >= CYCLES

    async with SqliteStore(db, ring, visible_window=100_000) as store:
        stored: dict[tuple[int, int], str] = {}
        for conv in convs:
            events = []
            after = 0
            while True:
                page = await store.events_after(alice, conv, after, 1000)
                events += page.events
                if not page.has_more:
                    break
                after = page.events[-1].seq
            assert [e.seq for e in events] == list(range(1, len(events) + 1)), "gap in seqs"
            assert events[0].kind == EventKind.CREATED
            texts = [e.payload["text"] for e in events[1:]]
            assert len(set(texts)) == len(texts), "an append was stored twice"
            stored.update({(conv, e.seq): e.payload["text"] for e in events[1:]})
        for conv, seq, client_msg_id, _ in acked:
            assert stored.get((conv, seq)) == text_of(client_msg_id), (conv, seq, client_msg_id)
        assert len({(c, s) for c, s, _, _ in acked}) == len(acked)

        # The idempotency keys are as durable as the events they name.
        retries = await asyncio.gather(
            *(
                post(store, conv, sender, text_of(cmid), client_msg_id=cmid)
                for conv, _, cmid, sender in acked
            )
        )
        for (conv, seq, cmid, _), retry in zip(acked, retries, strict=True):
            assert retry.duplicate and (retry.conv_id, retry.first_seq) == (conv, seq), cmid
        assert (await store.verify()).ok

    result = run_chatd(tmp_path, "verify")
    assert result.returncode == 0, result
    assert "OK" in result.stdout
