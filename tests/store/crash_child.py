"""Child process of ``test_crash.py``: appends messages from several concurrent tasks and
prints one line per *acknowledged* append (``conv seq client_msg_id sender``), flushed at
once, until the parent kills it.

Usage: ``python crash_child.py DATA_DIR CYCLE SENDER:CONV[,SENDER:CONV…]``
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from chatd.core.conversations import MessageBody, PostMessage
from chatd.crypto.keyring import load_key_file
from chatd.store.sqlite import SqliteStore

TASKS = 8


def text_of(client_msg_id: str) -> str:
    return f"text of {client_msg_id}"


def emit(line: str) -> None:
    # One write per line (shorter than PIPE_BUF, so never interleaved), flushed: once the
    # parent reads it, the append it reports had been acknowledged.
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def main(data_dir: Path, cycle: int, targets: list[tuple[int, int]]) -> None:
    store = SqliteStore(data_dir / "chatd.sqlite3", load_key_file(data_dir / "master.keys"))
    await store.open()
    emit("ready")

    async def appender(task: int) -> None:
        n = 0
        while True:
            sender, conv = targets[(task + n) % len(targets)]
            client_msg_id = f"c{cycle}-t{task}-n{n}"
            result = await store.apply(
                PostMessage(conv, sender, MessageBody(text_of(client_msg_id)), client_msg_id)
            )
            emit(f"{result.conv_id} {result.first_seq} {client_msg_id} {sender}")
            n += 1

    await asyncio.gather(*(appender(t) for t in range(TASKS)))


if __name__ == "__main__":
    pairs = [tuple(int(x) for x in item.split(":")) for item in sys.argv[3].split(",")]
    asyncio.run(main(Path(sys.argv[1]), int(sys.argv[2]), pairs))  # type: ignore[arg-type]
