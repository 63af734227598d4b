"""A small test client of the chatd protocol over a real socket (the ``websockets`` library).

It reads every frame in a background task: replies resolve the request waiting on their
``rid``; everything else (events, archived markers, state pushes) is appended to ``pushes``.
Tests wait on conditions with timeouts — never on sleeps.
"""

from __future__ import annotations

import asyncio
import itertools
import socket
from collections.abc import Callable
from typing import Any

import msgpack
import websockets
from websockets.asyncio.client import ClientConnection, connect

TIMEOUT = 10.0
_cmids = itertools.count(1)


def cmid() -> str:
    return f"c{next(_cmids)}"


def pack(obj: Any) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)


class WsClient:
    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self._rids = itertools.count(1)
        self._replies: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.unmatched: list[dict[str, Any]] = []  # replies with no waiting request (rid None)
        self.pushes: list[dict[str, Any]] = []
        self.hello: dict[str, Any] | None = None
        self.close_code: int | None = None
        self.close_reason: str | None = None
        self._changed = asyncio.Condition()
        self._reading = asyncio.Event()
        self._reading.set()
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def open(
        cls,
        ws_url: str,
        token: str | None = None,
        *,
        origin: str | None = None,
        rcvbuf: int | None = None,
        max_queue: int = 16,
        ssl: Any = None,
        lang: str | None = None,
    ) -> WsClient:
        """``lang``: the language the client asks for in its ``auth`` (none: the server's
        default, French)."""
        sock = None
        if rcvbuf is not None:
            host, port = ws_url.split("//", 1)[1].split("/", 1)[0].rsplit(":", 1)
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            sock.setblocking(False)
            await asyncio.get_running_loop().sock_connect(sock, (host, int(port)))
        ws = await connect(
            ws_url,
            origin=origin,  # type: ignore[arg-type]
            max_size=16 * 1024 * 1024,
            max_queue=max_queue,
            open_timeout=TIMEOUT,
            ping_interval=None,
            compression=None,
            sock=sock,
            ssl=ssl,
        )
        client = cls(ws)
        if token is not None:
            asked = {} if lang is None else {"lang": lang}
            client.hello = await client.request("auth", token=token, **asked)
            assert client.hello["op"] == "hello", client.hello
        return client

    async def _read(self) -> None:
        try:
            while True:
                await self._reading.wait()
                raw = await self.ws.recv()
                msg = msgpack.unpackb(raw, raw=False) if isinstance(raw, bytes) else {"text": raw}
                is_reply = msg.get("op") in ("ok", "error", "hello")
                future = self._replies.pop(msg.get("rid"), None) if is_reply else None
                if future is not None:
                    future.set_result(msg)
                elif is_reply:
                    self.unmatched.append(msg)
                else:
                    self.pushes.append(msg)
                async with self._changed:
                    self._changed.notify_all()
        except websockets.ConnectionClosed:
            pass
        finally:
            rcvd = self.ws.protocol.close_rcvd
            self.close_code = rcvd.code if rcvd is not None else 1006
            self.close_reason = rcvd.reason if rcvd is not None else ""
            for future in self._replies.values():
                if not future.done():
                    future.set_exception(ConnectionError(f"closed {self.close_code}"))
            async with self._changed:
                self._changed.notify_all()

    def pause_reading(self) -> None:
        """Stop taking frames from the connection (once its small queue is full, the
        socket is not read either: a slow consumer)."""
        self._reading.clear()

    def resume_reading(self) -> None:
        self._reading.set()

    # ------------------------------------------------------------------ requests

    async def send_raw(self, data: bytes | str) -> None:
        await self.ws.send(data)

    async def request(self, op: str, **fields: Any) -> dict[str, Any]:
        rid = next(self._rids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._replies[rid] = future
        await self.ws.send(pack({"op": op, "rid": rid, **fields}))
        return await asyncio.wait_for(future, TIMEOUT)

    async def ok(self, op: str, **fields: Any) -> dict[str, Any]:
        reply = await self.request(op, **fields)
        assert reply["op"] == "ok", reply
        return reply

    async def error(self, op: str, **fields: Any) -> str:
        reply = await self.request(op, **fields)
        assert reply["op"] == "error", reply
        return str(reply["code"])

    async def create(
        self, members: list[int], name: str = "Staff", text: str | None = "hello", **extra: Any
    ) -> int:
        fields: dict[str, Any] = {"client_msg_id": cmid(), "members": members, "name": name}
        if text is not None:
            fields["text"] = text
        return int((await self.ok("create", **fields, **extra))["conv"])

    async def send(self, conv: int, text: str, **extra: Any) -> dict[str, Any]:
        extra.setdefault("client_msg_id", cmid())
        return await self.ok("send", conv=conv, text=text, **extra)

    async def sync(
        self, convs: dict[int, int] | None = None, epoch: str | None = None
    ) -> dict[str, Any]:
        fields: dict[str, Any] = {} if epoch is None else {"epoch": epoch}
        return await self.ok("sync", convs=[[c, s] for c, s in (convs or {}).items()], **fields)

    # ------------------------------------------------------------------ waiting

    async def wait_until(self, predicate: Callable[[], bool], timeout: float = TIMEOUT) -> None:
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(predicate), timeout)

    def events(self, conv: int | None = None) -> list[dict[str, Any]]:
        return [
            m for m in self.pushes if m["op"] == "event" and (conv is None or m["conv"] == conv)
        ]

    def seqs(self, conv: int) -> list[int]:
        return [m["seq"] for m in self.events(conv)]

    async def wait_seq(self, conv: int, seq: int, timeout: float = TIMEOUT) -> None:
        """Until an event of ``conv`` with seq ≥ ``seq`` arrived."""
        await self.wait_until(lambda: any(s >= seq for s in self.seqs(conv)), timeout)

    async def flush(self) -> None:
        """Everything already queued for this session has arrived (a ping round trip:
        replies and pushes leave the server through one queue, in order).  A push still in
        the fan-out dispatcher may come later: to prove that an event does *not* reach a
        session, first wait until it reached another recipient (the dispatcher queues an
        event for all its recipients at once), then flush."""
        await self.ok("ping")

    async def wait_closed(self, timeout: float = TIMEOUT) -> tuple[int | None, str | None]:
        await asyncio.wait_for(asyncio.shield(self._reader), timeout)
        return self.close_code, self.close_reason

    async def close(self) -> None:
        await self.ws.close()
        await asyncio.gather(self._reader, return_exceptions=True)
