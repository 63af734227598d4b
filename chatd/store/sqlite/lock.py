"""The running server's claim on its database: an advisory ``flock`` beside the file.

``chatd serve`` holds it for its whole life.  Commands that would leave a running server with a
stale view of the keys — ``chatd keys rotate`` (the server would keep wrapping new data keys
with the previous KEK) and ``chatd keys retire`` (which would then retire a key still in use)
— take it too, so they refuse while a server runs instead of corrupting quietly, as does
``chatd store new-epoch`` (the server would go on announcing the epoch it read at start); a
second ``chatd serve`` on the same database refuses as well.  That is also what makes the
server the single appender the writer's conversation cache relies on (see
:class:`chatd.store.contract.LogStore`).  The kernel releases a flock when its
process dies, so a crashed server never leaves a stale lock behind.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from types import TracebackType
from typing import Self

from chatd.core.errors import ServerRunningError
from chatd.i18n import N_, Text

__all__ = ["ServerLock", "ServerRunningError"]


class ServerLock:
    def __init__(self, database: Path, purpose: str) -> None:
        """``purpose``: what the lock is for, a message id marked with ``N_`` that ends
        "stop it before you …" (``N_("rotate the master key")``)."""
        self.path = database.with_name(database.name + ".lock")
        self._purpose = purpose
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise ServerRunningError(
                N_(
                    "A chatd server (or another admin command) is using {directory};"
                    " stop it before you {purpose}."
                ),
                directory=str(self.path.parent),
                purpose=Text(self._purpose),
            ) from None
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None

    def __enter__(self) -> Self:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
