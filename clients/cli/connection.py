"""The thin async layer: one WebSocket to chatd that comes back when it drops.

:class:`Client` runs the client algorithm of ``docs/protocol.md`` §9 over the ``websockets``
library: connect, ``auth``, read ``hello``, (live clients) ``sync`` with the seqs it holds,
then serve requests and pushes until the connection closes; then back off with jitter and
start again — except after the closes that need a new login (4001–4004), which end the client
with an :class:`~clients.cli.errors.AuthError`.

Two kinds of requests:

- reads (:meth:`Client.request`) are simply retried on the next connection if the current one
  drops before the answer;
- changes (:meth:`Client.submit`) are written to the :mod:`~clients.cli.outbox` first, then
  sent by :mod:`~clients.cli.delivery` on each connection, in order, each with its original
  ``client_msg_id``, until the server answers — including what earlier runs left there.

Everything protocol-shaped (frames, cursors, the outbox's content) is plain code elsewhere;
this module only moves bytes and waits.
"""

from __future__ import annotations

import asyncio
import enum
import os
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection, connect

from clients.cli import i18n
from clients.cli.config import Session, remember_language
from clients.cli.delivery import Delivery, OutboxHandler, Submitted
from clients.cli.errors import (
    RETRY_LATER,
    AuthError,
    CliError,
    ConnectionLost,
    NetworkError,
    close_error,
    server_error,
)
from clients.cli.heads import Rewind
from clients.cli.heads_file import HeadsFile
from clients.cli.i18n import N_, _
from clients.cli.outbox import OutboxFile
from clients.cli.protocol import (
    BACKOFF_CAP,
    MAX_FRAME_BYTES,
    FrameError,
    Hello,
    Push,
    Reply,
    RequestIds,
    backoff_delay,
    decode_frame,
    encode_request,
    sync_fields,
    ws_url,
)
from clients.cli.state import Cursors

OPEN_TIMEOUT = 10.0
AUTH_TIMEOUT = 10.0
ENV_MAX_BACKOFF = "CHATD_CLI_MAX_BACKOFF"  # tests and impatient people shorten the cap
SLOW_CONSUMER = 4005  # reconnect at once (protocol §13)


class Status(enum.Enum):
    """The connection's state; its value is the message id of what a person is shown
    (:meth:`label`)."""

    CONNECTING = N_("connecting…")
    CONNECTED = N_("connected")
    RECONNECTING = N_("reconnecting…")

    def label(self) -> str:
        return _(self.value)


def max_backoff() -> float:
    try:
        cap = float(os.environ.get(ENV_MAX_BACKOFF) or BACKOFF_CAP)
    except ValueError:
        return BACKOFF_CAP
    return cap if cap > 0.1 else 0.1


def describe(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return _("connection refused")
    if isinstance(exc, TimeoutError):
        return _("timed out")
    text = str(exc) or type(exc).__name__
    return text[:200]


def connection_closed(code: int | None) -> str:
    if code is None:
        return _("connection closed")
    return _("connection closed ({code})", code=str(code))


PushHandler = Callable[[Push], None]
StatusHandler = Callable[[Status, str], None]
RewindHandler = Callable[[Rewind], None]


def warn_loudly(rewind: Rewind) -> None:
    """The default for a rewound log: a line on stderr that cannot be missed."""
    sys.stderr.write(f"\n*** {rewind.sentence()} ***\n\n")
    sys.stderr.flush()


Prepare = Callable[["Client", bool], Awaitable[None]]


class Client:
    """One logical connection to a chatd server, for one logged-in user.

    ``live`` clients ``sync`` after every (re)connect and so receive pushes; one-shot
    commands skip it.  ``prepare(client, first)`` runs on every connection after ``hello``
    and before ``sync`` (the interactive view loads its conversation there the first time).
    """

    def __init__(
        self,
        session: Session,
        *,
        outbox: OutboxFile | None = None,
        cursors: Cursors | None = None,
        live: bool = False,
        prepare: Prepare | None = None,
        on_push: PushHandler | None = None,
        on_status: StatusHandler | None = None,
        on_outbox: OutboxHandler | None = None,
        on_rewind: RewindHandler = warn_loudly,
        fail_fast: bool = False,
        heads_file: HeadsFile | None = None,
    ) -> None:
        self.session = session
        self.fail_fast = fail_fast  # stop at the first refused connection instead of retrying
        self.outbox = outbox or OutboxFile.of(session.server, session.user_id)
        self.cursors = cursors or Cursors()
        # The heads seen in earlier runs: a server rewound while chatd-cli was not running is
        # caught on the first ``list`` or ``sync`` (live clients; one-shot commands check none).
        self.heads_file = heads_file or HeadsFile.of(session.server, session.user_id)
        if live:
            self.cursors.heads = self.heads_file.load()
        self._on_rewind = on_rewind
        self.live = live
        self.hello: Hello | None = None
        self.status = Status.CONNECTING
        self.last_error = ""
        self._prepare = prepare
        self._on_push = on_push
        self._on_status = on_status
        self._url = ws_url(session.server)
        self._rids = RequestIds()
        self._ws: ClientConnection | None = None
        self._replies: dict[int, asyncio.Future[Reply]] = {}
        self._ready = asyncio.Event()
        self._fatal: CliError | None = None
        self.delivery = Delivery(self.outbox, on_outbox)
        self._last_sent = time.monotonic()
        self._task: asyncio.Task[None] | None = None
        self._prepared = False

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> Client:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._ws is not None:
            await self._ws.close()

    @property
    def fatal(self) -> CliError | None:
        return self._fatal

    async def wait_fatal(self) -> CliError:
        """Wait until the client stops for good (an error reconnecting cannot fix)."""
        assert self._task is not None
        await asyncio.shield(self._task)
        assert self._fatal is not None
        return self._fatal

    def _set_status(self, status: Status, detail: str = "") -> None:
        self.status = status
        if self._on_status is not None:
            self._on_status(status, detail)

    async def _run(self) -> None:
        attempt = 0
        cap = max_backoff()
        while True:
            self.hello = None
            close_code: int | None = None
            try:
                close_code = await self._connection()
            except CliError as exc:
                if exc.code not in RETRY_LATER:  # the server is starting or stopping: retry
                    self._stop(exc)
                    return
                self.last_error = exc.message
            except (OSError, TimeoutError, websockets.WebSocketException, ConnectionLost) as exc:
                self.last_error = describe(exc)
                if self.fail_fast and isinstance(exc, ConnectionRefusedError):
                    self._stop(
                        NetworkError(
                            _(
                                "The server {server} is not answering ({reason}): is it running?",
                                server=self.session.server,
                                reason=self.last_error,
                            )
                        )
                    )
                    return
            except FrameError as exc:
                self.last_error = str(exc)
            except Exception as exc:  # a bug: end the client with a sentence, not a hang
                if os.environ.get("CHATD_CLI_DEBUG"):
                    raise
                self._stop(CliError(_("Unexpected client error: {reason}", reason=describe(exc))))
                return
            if self.hello is not None:  # it was up: the next attempt starts the backoff anew
                attempt = 0
            delay = 0.0 if close_code == SLOW_CONSUMER else backoff_delay(attempt, cap)
            attempt += 1
            self._set_status(
                Status.RECONNECTING,
                _(
                    "{reason}; retrying in {seconds} s",
                    reason=self.last_error,
                    seconds=i18n.decimal(delay, 1),
                ),
            )
            await asyncio.sleep(delay)

    def _stop(self, exc: CliError) -> None:
        self._fatal = exc
        self._ready.set()  # wake every waiter: they find _fatal set
        self.delivery.stop(exc)

    # ------------------------------------------------------------------ one connection

    async def _connection(self) -> int | None:
        """Connect, authenticate, serve until closed; the close code."""
        ws = await connect(
            self._url,
            compression=None,
            max_size=MAX_FRAME_BYTES,
            open_timeout=OPEN_TIMEOUT,
            close_timeout=2,
            user_agent_header="chatd-cli",
            additional_headers={"Accept-Language": i18n.header()},
        )
        tasks: list[asyncio.Task[None]] = []
        try:
            self.hello = await self._authenticate(ws)
            entered = self.cursors.enter(self.hello.epoch)
            if self.live:
                self._rewinds([])  # a declared new epoch dropped the heads: remember it
            if entered:
                # The database was restored or replaced: what was held names nothing here any
                # more, so the client starts again as on its first connection.
                self._prepared = False
            self._ws = ws
            tasks.append(asyncio.get_running_loop().create_task(self._read(ws)))
            if self._prepare is not None:
                await self._prepare(self, not self._prepared)
                self._prepared = True  # only once it went through: a drop midway redoes it
            if self.live:
                await self._sync()
            tasks.append(asyncio.get_running_loop().create_task(self._deliver(ws)))
            if self.live:
                tasks.append(asyncio.get_running_loop().create_task(self._keepalive()))
            self.last_error = ""
            self._ready.set()
            self._set_status(Status.CONNECTED)
            await tasks[0]  # the reader: until the connection closes
        finally:
            self._ready.clear()
            self._ws = None
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            lost = ConnectionLost(connection_closed(ws.close_code))
            for future in self._replies.values():
                if not future.done():
                    future.set_exception(lost)
            self._replies.clear()
            await ws.close()
        error = self._fatal or close_error(ws.close_code)
        if error is not None:
            raise error
        self.last_error = self.last_error or connection_closed(ws.close_code)
        return ws.close_code

    async def _authenticate(self, ws: ClientConnection) -> Hello:
        # ``lang``: the server writes its sentences in chatd-cli's language (unless the
        # account chose one: then hello says so, and chatd-cli follows it).
        auth = {"token": self.session.token, "lang": i18n.VOICE.lang}
        await ws.send(encode_request("auth", next(self._rids), auth))
        try:
            raw = await asyncio.wait_for(ws.recv(), AUTH_TIMEOUT)
        except websockets.ConnectionClosed:
            raise close_error(ws.close_code) or ConnectionLost(
                _("closed during login ({code})", code=str(ws.close_code))
            ) from None
        frame = decode_frame(raw)
        if not isinstance(frame, Reply) or frame.op not in ("hello", "error"):
            raise FrameError(_("The server did not answer auth with hello."))
        if frame.op == "error":
            raise server_error(str(frame.fields.get("code")), str(frame.fields.get("message")))
        hello = Hello.from_reply(frame)
        self._follow_account(hello)
        if not hello.terms_accepted:
            raise AuthError(
                _(
                    "The terms of use (version {version}) are not accepted yet; please log in"
                    " again to read and accept them: chatd-cli login",
                    version=hello.terms_version,
                ),
                code="terms_not_accepted",
            )
        return hello

    def _follow_account(self, hello: Hello) -> None:
        """The account's language as ``hello`` says it: cached for the next commands, and
        spoken from now on (it may have been chosen on another device meanwhile)."""
        chosen = hello.account_language
        if chosen == "":  # a server that does not say: keep what we have
            return
        if chosen != self.session.user.get("language", ""):
            self.session = remember_language(self.session, chosen)
        i18n.follow(chosen)

    async def _read(self, ws: ClientConnection) -> None:
        try:
            async for raw in ws:
                try:
                    frame = decode_frame(raw)
                except FrameError:
                    continue  # nothing sensible to do with it; the protocol never sends one
                if isinstance(frame, Reply):
                    future = self._replies.pop(frame.rid, None) if frame.rid is not None else None
                    if future is not None and not future.done():
                        future.set_result(frame)
                    continue
                if frame.op == "event" and self.live:  # checked before it is known a duplicate
                    self._rewinds([self.cursors.heads.on_event(frame.fields)])
                push = self.cursors.apply(frame)
                if push is not None and self._on_push is not None:
                    self._on_push(push)
        except websockets.ConnectionClosed:
            pass

    async def _sync(self) -> None:
        """``sync`` from the held seqs, with the held hashes; its ``heads`` are checked."""
        heads = self.cursors.heads
        entries, sent = heads.sync_entries(self.cursors.held)
        reply = await self._call(
            "sync", sync_fields(self.cursors.held, self.cursors.epoch, entries)
        )
        answers = reply.get("heads")
        self._rewinds(heads.on_sync(sent, answers if isinstance(answers, list) else []))

    def check_list(self, entries: list[Any]) -> None:
        """A ``list`` reply against the held heads (live clients run it in ``prepare``,
        before ``sync``): a conversation gone, or behind what was seen, is a rewind."""
        if self.live:
            self._rewinds(self.cursors.heads.on_list(entries))

    def _rewinds(self, found: Sequence[Rewind | None]) -> None:
        """Say each rewind found, and keep the heads for the next run."""
        for rewind in found:
            if rewind is not None:
                self._on_rewind(rewind)
        if self.cursors.heads.changed:
            self.heads_file.save(self.cursors.heads)

    async def _call(self, op: str, fields: dict[str, Any]) -> dict[str, Any]:
        """One request on the current connection; :class:`ConnectionLost` if it drops."""
        ws = self._ws
        if ws is None:
            raise ConnectionLost(_("not connected"))
        rid = next(self._rids)
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._replies[rid] = future
        try:
            await ws.send(encode_request(op, rid, fields))
        except websockets.ConnectionClosed:
            self._replies.pop(rid, None)
            raise ConnectionLost(connection_closed(None)) from None
        self._last_sent = time.monotonic()
        reply = await future
        if not reply.ok:
            f = reply.fields
            raise server_error(str(f.get("code")), str(f.get("message")), f.get("details"))
        return reply.fields

    async def _deliver(self, ws: ClientConnection) -> None:
        try:
            await self.delivery.flush(self._call)
        except AuthError as exc:
            self._stop(exc)  # the entry stays queued for after the next login
            await ws.close()

    async def _keepalive(self) -> None:
        """``ping`` before the server's idle limit closes a quiet live connection."""
        assert self.hello is not None
        interval = max(1.0, self.hello.idle_seconds / 2)
        while True:
            await asyncio.sleep(max(0.5, interval - (time.monotonic() - self._last_sent)))
            if time.monotonic() - self._last_sent >= interval:
                try:
                    await self._call("ping", {})
                except ConnectionLost:
                    return

    # ------------------------------------------------------------------ requests

    async def wait_ready(self) -> None:
        while True:
            if self._fatal is not None:
                raise self._fatal
            if self._ready.is_set() and self._ws is not None:
                return
            await self._ready.wait()

    async def request(self, op: str, **fields: Any) -> dict[str, Any]:
        """A read (or ``read``/``ping``): sent again on the next connection until answered."""
        attempt = 0
        while True:
            await self.wait_ready()
            try:
                return await self._call(op, fields)
            except ConnectionLost:
                continue
            except CliError as exc:
                if exc.code not in RETRY_LATER:
                    raise
                await asyncio.sleep(backoff_delay(attempt))
                attempt += 1

    async def call_now(self, op: str, **fields: Any) -> dict[str, Any]:
        """A request on the connection being set up (for ``prepare``): no waiting, no retry."""
        return await self._call(op, fields)

    @property
    def immediate(self) -> Immediate:
        """This client with ``request`` meaning :meth:`call_now` (for ``prepare``)."""
        return Immediate(self)

    def submit(self, op: str, fields: dict[str, Any]) -> Submitted:
        """A change: see :meth:`Delivery.submit`."""
        return self.delivery.submit(op, fields)

    async def outbox_drained(self) -> None:
        await self.delivery.drained()


class Immediate:
    def __init__(self, client: Client) -> None:
        self._client = client

    async def request(self, op: str, **fields: Any) -> dict[str, Any]:
        return await self._client.call_now(op, **fields)
