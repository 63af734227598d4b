"""Stopping ``chatd serve`` with Ctrl-C (SIGINT) or SIGTERM while clients are busy.

The promise (docs/protocol.md §13, ``chatd serve --help``): the server stops on either signal
within 5 s, connected clients get close 1012 (the server is restarting), every message it
acknowledged is in the log afterwards, nothing is printed as a traceback, and it exits 0.
Before the fix, SIGINT left the store's writer cancelled mid-flight and the process hung
forever with its port closed.
"""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import pytest
import websockets

from chatd.core.events import EventKind
from tests.gateway.client import WsClient
from tests.gateway.conftest import LENIENT, Admin, start_server

STOP_PROMISE = 5.0  # seconds from the signal to the process's exit
CLIENTS = 12


async def _send_until_closed(client: WsClient, conv: int, acked: list[str], me: int) -> None:
    """Send messages back to back until the server closes the connection."""
    n = 0
    while client.close_code is None:
        n += 1
        text = f"client {me} message {n}"
        try:
            await client.send(conv, text)
        except (TimeoutError, ConnectionError, websockets.ConnectionClosed):
            return  # the server is stopping: this one was not acknowledged
        acked.append(text)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
async def test_stop_under_load_is_clean_and_prompt(
    tmp_path: Path, password_hash: str, signum: signal.Signals
) -> None:
    server = start_server(tmp_path, LENIENT)
    store = server.store()
    await store.open()
    admin = Admin(server, store, password_hash)
    try:
        accounts = await admin.users(CLIENTS)
        clients = [await admin.connect(a) for a in accounts]
        conv = await clients[0].create([a.id for a in accounts[1:]], "Charge", text=None)
        acked: list[list[str]] = [[] for _ in clients]
        senders = [
            asyncio.create_task(_send_until_closed(c, conv, out, i))
            for i, (c, out) in enumerate(zip(clients, acked, strict=True))
        ]
        # Under load for real: every client has had messages acknowledged.
        await clients[0].wait_until(lambda: all(len(out) >= 3 for out in acked), 30)

        server.proc.send_signal(signum)
        signalled = time.monotonic()
        code = await asyncio.to_thread(server.proc.wait, 30)
        took = time.monotonic() - signalled
        await asyncio.wait_for(asyncio.gather(*senders), 30)

        log = server.log()
        assert code == 0, log
        assert took < STOP_PROMISE, f"stopped after {took:.1f} s\n{log}"
        assert "Traceback" not in log and " ERROR " not in log, log
        assert "chatd stopped" in log
        closes = {c.close_code for c in clients}
        assert closes == {1012}, closes

        # Every acknowledged message is in the log (the writer drained before exit).  Read
        # through the operator's export path: no visibility window, however many were sent.
        reader = server.store()
        await reader.open()
        try:
            texts = set()
            position = (0, 0)
            while events := await reader.export_events(position, 1000):
                texts |= {
                    e.payload.get("text")
                    for e in events
                    if e.conv_id == conv and e.kind == EventKind.MESSAGE
                }
                position = (events[-1].conv_id, events[-1].seq)
        finally:
            await reader.close()
        assert {t for out in acked for t in out} <= texts
    finally:
        for client in admin.clients:
            await client.close()
        await store.close()
        if server.proc.poll() is None:
            server.proc.kill()
            server.proc.wait()
