"""The outbox: changes the user made that the server has not acknowledged yet.

A change (create, send, add, leave, rename) is written here *before* it is first sent, with
the ``client_msg_id`` it keeps for ever; it leaves the outbox only when the server answers
(``ok`` — possibly ``duplicate: true`` — or an error, which means nothing was recorded).  So a
change survives a dropped connection, a server restart and a client restart, and however often
it is re-sent the server applies it once (``docs/protocol.md`` §5, idempotency).

The file is the truth, not a process's memory: several chatd-cli processes of the same user
may run at once (a ``watch`` in one terminal, ``send`` in another), so every change to the
file is a read-modify-write under an exclusive ``flock``.  Two processes may then both send
the same entry; the shared ``client_msg_id`` makes that harmless.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from clients.cli.config import private_dir, server_dir, write_private
from clients.cli.protocol import MUTATIONS, new_client_msg_id

FORMAT = 1


@dataclass(frozen=True)
class OutboxEntry:
    client_msg_id: str
    op: str  # one of protocol.MUTATIONS
    fields: dict[str, Any]  # the request's fields, without op, rid and client_msg_id
    queued_at: int  # ms since the epoch, local clock (shown to the user)

    @classmethod
    def new(cls, op: str, fields: dict[str, Any]) -> OutboxEntry:
        assert op in MUTATIONS, op
        return cls(new_client_msg_id(), op, dict(fields), time.time_ns() // 1_000_000)

    def request(self) -> dict[str, Any]:
        """The request's fields as sent, every time: the same ``client_msg_id``."""
        return {**self.fields, "client_msg_id": self.client_msg_id}

    @property
    def conv(self) -> int | None:
        conv = self.fields.get("conv")
        return conv if isinstance(conv, int) else None


def encode(entries: list[OutboxEntry]) -> str:
    return json.dumps({"format": FORMAT, "entries": [asdict(e) for e in entries]}, indent=1)


def decode(text: str) -> list[OutboxEntry]:
    """Entries from the file; unreadable entries are kept out rather than crash a client."""
    if not text.strip():
        return []
    data = json.loads(text)
    entries = []
    for item in data.get("entries", []):
        try:
            entry = OutboxEntry(
                str(item["client_msg_id"]),
                str(item["op"]),
                dict(item["fields"]),
                int(item["queued_at"]),
            )
        except (KeyError, TypeError, ValueError):
            continue
        if entry.op in MUTATIONS:
            entries.append(entry)
    return entries


class OutboxFile:
    """The outbox of one user on one server: ``outbox-<user id>.json`` beside its session."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def of(cls, server: str, user_id: int) -> OutboxFile:
        return cls(server_dir(server) / f"outbox-{user_id}.json")

    @contextmanager
    def _locked(self) -> Iterator[list[OutboxEntry]]:
        private_dir(self.path.parent)
        lock_path = self.path.with_name(self.path.name + ".lock")
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield self._read()
        finally:
            os.close(fd)  # releases the lock

    def _read(self) -> list[OutboxEntry]:
        try:
            return decode(self.path.read_text())
        except FileNotFoundError:
            return []
        except ValueError:  # a damaged file: keep it aside for a person to look at
            self.path.replace(self.path.with_name(self.path.name + ".damaged"))
            return []

    def pending(self) -> list[OutboxEntry]:
        with self._locked() as entries:
            return entries

    def add(self, entry: OutboxEntry) -> None:
        with self._locked() as entries:
            if all(e.client_msg_id != entry.client_msg_id for e in entries):
                entries.append(entry)
                write_private(self.path, encode(entries))

    def remove(self, client_msg_id: str) -> bool:
        with self._locked() as entries:
            kept = [e for e in entries if e.client_msg_id != client_msg_id]
            if len(kept) == len(entries):
                return False
            write_private(self.path, encode(kept))
            return True
