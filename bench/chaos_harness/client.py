"""A simulated client of the chatd protocol, as the protocol's §9 tells a client to behave.

One real WebSocket at a time (the ``websockets`` library, as the gateway tests use it).  A
*session* is one connection: ``auth``, then ``sync`` with the last seq held per conversation,
then the client works through its outbox while a reader task takes every frame.

* Every mutation carries a ``client_msg_id`` chosen once, when the operation is created; the
  outbox is worked in order, one request at a time; an operation leaves it only on an answer.
  No answer within the timeout, or a disconnect → ``info`` (indeterminate) and the *same*
  request again (on this connection, or on the next).  A retryable error (``rate_limited``,
  ``unavailable``, ``internal_error``) → ``fail`` for that attempt, then again.  Any other
  error → ``fail``, final.
* On every close: reconnect with a short exponential backoff and jitter (at once after 4005,
  as the protocol asks), and resume with ``sync``.  Given several nodes' URLs (a cluster),
  it connects to the first (its home node) and, while a connection cannot even be opened
  (the node is down), to the next one in turn; once connected, its next reconnect tries
  home first again, so it goes back when its node is back.
* A *slow* client reads normally for a while, then stops reading for a while (a small socket
  receive buffer, a one-frame library queue), so that the server's outbound queue for it
  overflows and the server closes it with 4005 ``slow_consumer``.

Everything it is told goes to the :class:`~.history.History`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import socket
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import msgpack
import websockets
from websockets.asyncio.client import ClientConnection, connect

from .history import (
    Archived,
    Fault,
    History,
    Op,
    OpKind,
    Recv,
    SessionEnd,
    SyncOk,
    SyncSent,
    marker_of,
    message_text,
)

RETRYABLE = frozenset({"rate_limited", "unavailable", "internal_error"})
_sessions = itertools.count(1)


class SessionClosed(Exception):
    """The connection ended (or never began) before the request was answered."""


@dataclass(frozen=True, slots=True)
class ClientConfig:
    op_timeout: float = 5.0  # no answer within this: indeterminate, try again
    sync_timeout: float = 60.0
    connect_timeout: float = 10.0
    backoff_base: float = 0.05
    backoff_cap: float = 1.0
    slow_read: tuple[float, float] = (1.0, 3.0)  # slow client: seconds of normal reading
    slow_pause: tuple[float, float] = (4.0, 8.0)  # then seconds without reading
    slow_rcvbuf: int = 4096


@dataclass(eq=False)
class PendingOp:
    f: OpKind
    cmid: str
    conv: int | None
    fields: dict[str, Any]
    target: int | None = None
    done: asyncio.Future[Op | None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


def pack(obj: Any) -> bytes:
    return bytes(msgpack.packb(obj, use_bin_type=True))


class SimClient:
    def __init__(
        self,
        process: int,
        user_id: int,
        token: str,
        ws_url: str | Sequence[str],
        history: History,
        config: ClientConfig,
        rng: random.Random,
        *,
        slow: bool = False,
    ) -> None:
        self.process = process
        self.user_id = user_id
        self.token = token
        self.urls = (ws_url,) if isinstance(ws_url, str) else tuple(ws_url)
        self._away = 0  # connections that could not be opened in a row: try the next node
        self.history = history
        self.config = config
        self.rng = rng
        self.slow = slow
        self.held: dict[int, int] = {}
        self.sendable: set[int] = set()  # conversations the harness lets it send to
        self.outbox: deque[PendingOp] = deque()
        self.closes: Counter[int] = Counter()  # close codes seen
        self.connected_to: Counter[str] = Counter()  # connections opened, per node URL
        self.sessions = 0
        self.window = 200
        self._cmids = itertools.count(1)
        self._rids = itertools.count(1)
        self._replies: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._work = asyncio.Event()
        self._reading = asyncio.Event()
        self._reading.set()
        self._stopping = False
        self._ws: ClientConnection | None = None
        self._task: asyncio.Task[None] | None = None
        self.synced = asyncio.Event()  # set while a session is synced
        self.last_close: int | None = None
        self.synced_once = False
        self.errors: Counter[str] = Counter()  # unexpected exceptions (harness problems)

    # ------------------------------------------------------------------ outbox

    def new_cmid(self) -> str:
        return f"p{self.process}-{next(self._cmids)}"

    def submit(
        self, f: OpKind, conv: int | None, fields: dict[str, Any], target: int | None = None
    ) -> PendingOp:
        cmid = self.new_cmid()
        return self._enqueue(PendingOp(f, cmid, conv, {**fields, "client_msg_id": cmid}, target))

    def submit_message(self, conv: int, text_bytes: int) -> PendingOp:
        cmid = self.new_cmid()
        fields = {"conv": conv, "text": message_text(cmid, text_bytes), "client_msg_id": cmid}
        return self._enqueue(PendingOp("send", cmid, conv, fields))

    def _enqueue(self, op: PendingOp) -> PendingOp:
        """The user acted: the operation is invoked now (latency counts from here, through
        queueing, outages and retries), and will be sent when its turn comes."""
        self._record(op, "invoke")
        self.outbox.append(op)
        self._work.set()
        return op

    def _record(self, op: PendingOp, type_: Any, **extra: Any) -> Op:
        record = Op(
            self.history.now(),
            self.process,
            self.user_id,
            type_,
            op.f,
            op.cmid,
            extra.pop("conv", op.conv),
            target=op.target,
            **extra,
        )
        self.history.add(record)
        return record

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Stop the connection loop (the outbox keeps what was not answered)."""
        self._stopping = True
        self._work.set()
        self._reading.set()
        ws = self._ws
        if ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(), 5)
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    def drop(self) -> bool:
        """Nemesis: cut the connection without a close frame (a flaky network)."""
        ws = self._ws
        if ws is None:
            return False
        ws.transport.abort()
        return True

    async def _run(self) -> None:
        failures = 0
        while not self._stopping:
            self.last_close = None
            try:
                await self._session()
            except (SessionClosed, OSError, TimeoutError, websockets.InvalidHandshake):
                pass
            except Exception as exc:  # a harness problem: count it, keep the client alive
                self.errors[type(exc).__name__] += 1
            if self._stopping:
                break
            if self.last_close == 4005:
                failures = 0
                continue  # the protocol: reconnect at once and sync
            failures = 0 if self.last_close is not None and self.synced_once else failures + 1
            self.synced_once = False
            delay = min(self.config.backoff_cap, self.config.backoff_base * 2 ** min(failures, 10))
            await asyncio.sleep(delay * self.rng.uniform(0.5, 1.0))

    # ------------------------------------------------------------------ one session

    @property
    def ws_url(self) -> str:
        """The node to connect to now: home, or the next one while that cannot be reached."""
        return self.urls[self._away % len(self.urls)]

    async def _connect(self) -> ClientConnection:
        try:
            ws = await self._open()
        except BaseException:
            self._away += 1
            raise
        self.connected_to[self.ws_url] += 1
        self._away = 0
        return ws

    async def _open(self) -> ClientConnection:
        sock = None
        if self.slow:
            host, port = self.ws_url.split("//", 1)[1].split("/", 1)[0].rsplit(":", 1)
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.config.slow_rcvbuf)
            sock.setblocking(False)
            try:
                await asyncio.wait_for(
                    asyncio.get_running_loop().sock_connect(sock, (host, int(port))),
                    self.config.connect_timeout,
                )
            except BaseException:
                sock.close()
                raise
        return await connect(
            self.ws_url,
            max_size=16 * 1024 * 1024,
            max_queue=1 if self.slow else 64,
            open_timeout=self.config.connect_timeout,
            close_timeout=2,
            ping_interval=None,
            compression=None,
            sock=sock,
        )

    async def _session(
        self, *, positions: dict[int, int] | None = None, final: bool = False, work: bool = True
    ) -> int | None:
        """One connection from handshake to close; the close code seen (None: ours)."""
        ws = await self._connect()
        self._ws = ws
        self.sessions += 1
        session = next(_sessions)
        reader = asyncio.get_running_loop().create_task(self._read(ws, session))
        reader.add_done_callback(lambda _: self._work.set())
        slow_task: asyncio.Task[None] | None = None
        try:
            hello = await self._request(
                ws, reader, "auth", self.config.op_timeout, token=self.token
            )
            if hello.get("op") != "hello":
                raise SessionClosed(f"auth refused: {hello}")
            self.window = int(hello["limits"]["window"])
            self.history.window = self.window
            held = dict(self.held if positions is None else positions)
            self.history.add(
                SyncSent(
                    self.history.now(),
                    self.process,
                    self.user_id,
                    session,
                    tuple(sorted(held.items())),
                    final,
                )
            )
            reply = await self._request(
                ws,
                reader,
                "sync",
                self.config.sync_timeout,
                convs=[[c, s] for c, s in held.items()],
            )
            if reply.get("op") != "ok":
                raise SessionClosed(f"sync refused: {reply}")
            self.history.add(SyncOk(self.history.now(), self.process, self.user_id, session))
            self.synced.set()
            self.synced_once = True
            if not work:
                return None
            if self.slow:
                slow_task = asyncio.get_running_loop().create_task(self._slow_cycle())
            await self._work_outbox(ws, reader)
            return None
        finally:
            self.synced.clear()
            self._ws = None
            if slow_task is not None:
                slow_task.cancel()
            self._reading.set()
            if not reader.done():
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(ws.close(), 2)
            await asyncio.gather(reader, return_exceptions=True)
            rcvd = ws.protocol.close_rcvd
            code = rcvd.code if rcvd is not None else (None if self._stopping else 1006)
            self.last_close = code
            if code is not None:
                self.closes[code] += 1
            self.history.add(
                SessionEnd(self.history.now(), self.process, self.user_id, session, code)
            )

    async def _read(self, ws: ClientConnection, session: int) -> None:
        history, process, user = self.history, self.process, self.user_id
        try:
            while True:
                if not self._reading.is_set():
                    await self._reading.wait()
                raw = await ws.recv()
                if not isinstance(raw, bytes):
                    continue
                msg = msgpack.unpackb(raw, raw=False)
                op = msg.get("op")
                if op == "event":
                    conv, seq, kind = msg["conv"], msg["seq"], msg["kind"]
                    subject = msg.get("user")
                    history.add(
                        Recv(
                            history.now(),
                            process,
                            user,
                            session,
                            conv,
                            seq,
                            kind,
                            marker_of(msg.get("text")) if kind == "message" else None,
                            subject if isinstance(subject, int) else None,
                        )
                    )
                    if seq > self.held.get(conv, 0):
                        self.held[conv] = seq
                elif op == "archived":
                    conv, start = msg["conv"], msg["window_start"]
                    history.add(Archived(history.now(), process, user, session, conv, start))
                    if self.held.get(conv, 0) < start - 1:
                        self.held[conv] = start - 1
                elif op in ("ok", "error", "hello"):
                    future = self._replies.pop(msg.get("rid"), None)
                    if future is not None and not future.done():
                        future.set_result(msg)
        except websockets.ConnectionClosed:
            pass
        finally:
            for future in self._replies.values():
                if not future.done():
                    future.set_exception(SessionClosed("closed"))
            self._replies.clear()

    async def _request(
        self,
        ws: ClientConnection,
        reader: asyncio.Task[None],
        op: str,
        answer_within: float,
        **fields: Any,
    ) -> dict[str, Any]:
        if reader.done():
            raise SessionClosed("closed")
        rid = next(self._rids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._replies[rid] = future
        try:
            await ws.send(pack({"op": op, "rid": rid, **fields}))
        except websockets.ConnectionClosed as exc:
            self._replies.pop(rid, None)
            if future.done() and not future.cancelled():
                future.exception()  # the reader failed it as the connection closed: seen
            raise SessionClosed("closed") from exc
        try:
            return await asyncio.wait_for(future, answer_within)
        finally:
            self._replies.pop(rid, None)

    async def _work_outbox(self, ws: ClientConnection, reader: asyncio.Task[None]) -> None:
        while not self._stopping:
            if reader.done():
                raise SessionClosed("closed")
            if not self.outbox:
                self._work.clear()
                await self._work.wait()
                continue
            op = self.outbox[0]
            try:
                reply = await self._request(ws, reader, op.f, self.config.op_timeout, **op.fields)
            except TimeoutError:
                self._record(op, "info", code="timeout")
                continue
            except SessionClosed:
                self._record(op, "info", code="disconnect")
                raise
            if reply.get("op") == "ok":
                record = self._record(
                    op,
                    "ok",
                    conv=reply["conv"],
                    seq=reply["first_seq"],
                    duplicate=bool(reply.get("duplicate")),
                )
                self.outbox.popleft()
                if not op.done.done():
                    op.done.set_result(record)
                continue
            code = str(reply.get("code"))
            self._record(op, "fail", code=code)
            if code in RETRYABLE:
                await asyncio.sleep(0.05 + self.rng.random() * 0.2)
                continue
            self.outbox.popleft()
            if not op.done.done():
                op.done.set_result(None)

    async def _slow_cycle(self) -> None:
        lo, hi = self.config.slow_read
        plo, phi = self.config.slow_pause
        while self.slow:
            await asyncio.sleep(self.rng.uniform(lo, hi))
            if not self.slow:
                break
            self.history.add(Fault(self.history.now(), "slow", f"process {self.process} pauses"))
            self._reading.clear()
            await asyncio.sleep(self.rng.uniform(plo, phi))
            self._reading.set()

    def calm(self) -> None:
        """No more slow phases; read again at once."""
        self.slow = False
        self._reading.set()

    # ------------------------------------------------------------------ after the run

    async def resume_once(self, deadline: float, *, final: bool = False) -> bool:
        """One more session (the connection loop stopped): ``sync`` with what is held —
        or, with ``final``, a fresh reader claiming nothing — then close.  Retries until
        ``deadline`` (loop time); False if it never completed."""
        self._stopping = False
        self.slow = False
        loop = asyncio.get_running_loop()
        try:
            while loop.time() < deadline:
                try:
                    await self._session(positions={} if final else None, final=final, work=False)
                    return True
                except (SessionClosed, OSError, TimeoutError, websockets.InvalidHandshake):
                    await asyncio.sleep(0.1 + self.rng.random() * 0.2)
            return False
        finally:
            self._stopping = True
