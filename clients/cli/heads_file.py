"""The heads file: the chain hashes a user's chatd-cli saw, kept across runs.

``servers/<server-slug>/heads-<user id>.json`` beside the session and the outbox (mode 0600,
written atomically): the epoch and, per conversation, the last seq seen and its chain hash
(:mod:`clients.cli.heads`).  Without it a new run would hold nothing, and a server restored
from an old backup while chatd-cli was not running would go unnoticed.

It holds no content: hashes of ciphertexts and seqs, which say nothing the server does not
already tell.  Several processes of the same user may run at once (``watch`` and ``chat``):
every save is a read-merge-write under an exclusive ``flock``, keeping the later head.
"""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path

from clients.cli.config import private_dir, server_dir, write_private
from clients.cli.heads import Heads, decode, encode, merge


class HeadsFile:
    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def of(cls, server: str, user_id: int) -> HeadsFile:
        return cls(server_dir(server) / f"heads-{user_id}.json")

    def _read(self) -> Heads:
        try:
            return decode(json.loads(self.path.read_text()))
        except (OSError, ValueError):  # none yet, or unreadable: one check fewer, not a crash
            return Heads()

    def load(self) -> Heads:
        return self._read()

    def save(self, heads: Heads) -> None:
        """Write ``heads`` merged with what another process saved meanwhile."""
        private_dir(self.path.parent)
        lock_path = self.path.with_name(self.path.name + ".lock")
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            merged = merge(heads, self._read())
            write_private(self.path, json.dumps(encode(merged), indent=1) + "\n")
        finally:
            os.close(fd)  # releases the lock
        heads.changed = False
