"""The gateway benchmark's ceiling: a bare Starlette WebSocket broadcast server.

Run:  .venv/bin/python -m bench.ceiling_server [--host 127.0.0.1] [--port 0]

Same stack as ``chatd serve`` — Starlette on uvicorn, uvloop, the ``websockets-sansio``
protocol, no per-message compression, the same keepalive pings — and the same msgpack framing
of the chatd protocol, but nothing else: no storage, no authentication, no rate limit, no
per-connection queue or cursor.  It answers just enough of the protocol for the benchmark's
load generator to run unchanged against it:

* ``auth`` → ``hello`` (the token is taken as the user id, unchecked);
* ``sync`` with ``convs: [[room, seq], …]`` → joins those rooms, ``ok``;
* ``send`` → the next seq of the room, an ``event`` frame encoded once and written to every
  member's socket (the sender included, as chatd does), then the ``ok``;
* ``ping`` → ``ok``.

Like chatd it binds the socket itself (``--port 0`` picks a free port) and prints one line
``ceiling listening on http://HOST:PORT`` once bound.  SIGTERM/SIGINT stop it.
"""

from __future__ import annotations

import argparse
import signal
import socket
import time
from typing import Any

import msgpack
import uvicorn
import uvloop
from starlette.applications import Starlette
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

PING_SECONDS = 20.0  # chatd's default CHATD_WS_PING_SECONDS
MAX_FRAME_BYTES = 65536  # chatd's default CHATD_MAX_FRAME_BYTES


def pack(obj: Any) -> bytes:
    data: bytes = msgpack.packb(obj, use_bin_type=True)
    return data


class Rooms:
    """Room id → the sockets in it, and each room's last seq."""

    def __init__(self) -> None:
        self.members: dict[int, set[WebSocket]] = {}
        self.seqs: dict[int, int] = {}

    def join(self, room: int, ws: WebSocket) -> None:
        self.members.setdefault(room, set()).add(ws)

    def leave(self, rooms: list[int], ws: WebSocket) -> None:
        for room in rooms:
            members = self.members.get(room)
            if members is not None:
                members.discard(ws)

    async def broadcast(self, room: int, sender: int, text: str) -> int:
        seq = self.seqs.get(room, 0) + 1
        self.seqs[room] = seq
        data = pack(
            {
                "op": "event",
                "conv": room,
                "seq": seq,
                "kind": "message",
                "sender": sender,
                "ts": time.time_ns() // 1_000_000,
                "text": text,
                "tag": None,
                "attachments": [],
            }
        )
        for ws in tuple(self.members.get(room, ())):
            try:
                await ws.send_bytes(data)
            except Exception:  # that member is gone: its own loop cleans up
                self.members.get(room, set()).discard(ws)
        return seq


ROOMS = Rooms()


async def healthz(request: Any) -> Response:
    return JSONResponse({"status": "ok"})


async def websocket_endpoint(ws: WebSocket) -> None:
    await ws.accept()
    user = 0
    joined: list[int] = []
    try:
        while True:
            data = await ws.receive_bytes()
            msg = msgpack.unpackb(data, raw=False)
            op = msg.get("op")
            rid = msg.get("rid")
            if op == "auth":
                user = int(msg["token"])
                await ws.send_bytes(
                    pack(
                        {
                            "op": "hello",
                            "rid": rid,
                            "protocol": 1,
                            "user": {"id": user},
                            "terms_accepted": True,
                        }
                    )
                )
            elif op == "sync":
                for room, _held in msg.get("convs", []):
                    ROOMS.join(room, ws)
                    joined.append(room)
                convs = [[room, ROOMS.seqs.get(room, 0)] for room in joined]
                await ws.send_bytes(
                    pack({"op": "ok", "rid": rid, "convs": convs, "unknown": [], "expired": []})
                )
            elif op == "send":
                room = int(msg["conv"])
                seq = await ROOMS.broadcast(room, user, msg["text"])
                await ws.send_bytes(
                    pack(
                        {
                            "op": "ok",
                            "rid": rid,
                            "conv": room,
                            "first_seq": seq,
                            "last_seq": seq,
                            "duplicate": False,
                        }
                    )
                )
            elif op == "ping":
                await ws.send_bytes(pack({"op": "ok", "rid": rid, "server_time": 0}))
            else:
                await ws.send_bytes(
                    pack({"op": "error", "rid": rid, "code": "unknown_op", "message": "?"})
                )
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        ROOMS.leave(joined, ws)


def create_app() -> Starlette:
    return Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            WebSocketRoute("/v1/ws", websocket_endpoint),
        ]
    )


async def serve(host: str, port: int) -> None:
    config = uvicorn.Config(
        create_app(),
        loop="none",
        ws="websockets-sansio",
        ws_max_size=MAX_FRAME_BYTES,
        ws_ping_interval=PING_SECONDS,
        ws_ping_timeout=PING_SECONDS,
        ws_per_message_deflate=False,
        lifespan="off",
        log_level="warning",
        access_log=False,
        server_header=False,
        proxy_headers=False,
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    bound_host, bound_port = sock.getsockname()[:2]
    print(f"ceiling listening on http://{bound_host}:{bound_port}", flush=True)
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: None)
    try:
        await server.serve(sockets=[sock])
    finally:
        signal.signal(signal.SIGTERM, previous)
        sock.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    uvloop.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
