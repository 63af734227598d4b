"""One WebSocket connection: the thin async layer around the pure protocol and session.

Three tasks per connection, supervised together:

* the **reader** receives frames (idle timeout, rate limit), decodes them
  (:mod:`chatd.gateway.protocol`), checks them against the session
  (:mod:`chatd.gateway.session`) and the token, calls the handlers, and queues the reply;
  while the replies already due are unsent beyond a threshold it reads nothing more
  (back-pressure, :mod:`chatd.gateway.budget`), for at most ``CHATD_WS_STALL_SECONDS``, then
  closes 4005;
* the **sender** drains the connection's hub queue in order — replies, live events (through
  the session's cursors: in order, once, gaps filled from the store), per-user state, and
  ``sync`` jobs — and writes to the socket;
* the **close signal** of the hub subscription: slow consumer, logout, token expiry, idle,
  rate abuse all end the connection through :meth:`Subscription.fail` with their close code.

Nothing here knows a business rule.  Unexpected exceptions become ``internal_error`` frames
(or close 1011), logged by type and stack only: never a message text, a name or a token.
A database that does not answer (PostgreSQL restarting, failing over) is not unexpected:
the request is answered ``unavailable`` (retry the same request), or, where it broke a
push or the handshake, the connection closes 1001 (reconnect and ``sync``), with a warning.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from starlette.websockets import WebSocket

from chatd.core.accounts import Principal
from chatd.core.errors import (
    AuthError,
    ChatdError,
    ClientError,
    ConversationNotFound,
    ConversationShreddedError,
    DatabaseUnavailable,
    RateLimitedError,
    StoreClosedError,
    TokenExpiredError,
    TooManySessionsError,
    UnavailableError,
    UserDisabledError,
)
from chatd.gateway import protocol as p
from chatd.gateway.context import Gateway
from chatd.gateway.error_table import close_code_for
from chatd.gateway.fanout import EventPush, StatePush
from chatd.gateway.hub import CloseAfterQueue, Subscription, frame_bytes
from chatd.gateway.internal_errors import log_internal
from chatd.gateway.ops.base import SyncJob, now_ms
from chatd.gateway.ops.session import user_map
from chatd.gateway.session import Delivery, Session, TokenBucket
from chatd.i18n import DEFAULT_LANGUAGE, from_accept_language, language

log = logging.getLogger("chatd.gateway")
CloseCode = p.CloseCode

CATCH_UP_PAGE = 100
TOKEN_CHECK_SECONDS = 1.0  # a session at the terms gate re-reads its principal this often
CLOSE_TIMEOUT = 5.0


class _Gone(Exception):
    """The client went away while we were writing."""


class Connection:
    def __init__(self, websocket: WebSocket, gateway: Gateway) -> None:
        self._ws = websocket
        self._gw = gateway
        self._limits = gateway.settings.gateway
        self._accounts = gateway.settings.accounts
        self._session = Session(
            requested_language=from_accept_language(websocket.headers.get("accept-language")),
            default_language=language(self._accounts.default_language) or DEFAULT_LANGUAGE,
        )
        self._bucket = TokenBucket(self._limits.ws_rate, self._limits.ws_burst)
        self._sub: Subscription | None = None
        self._gone = False

    # ------------------------------------------------------------------ lifecycle

    async def run(self) -> None:
        try:
            await self._run()
        except _Gone:
            pass
        except DatabaseUnavailable:
            log.warning("connection closed: the database is unavailable")
            if not self._gone:
                await self._close(CloseCode.GOING_AWAY)
        except Exception as exc:  # never let uvicorn log a message that may hold content
            log_internal("connection", exc)
            if not self._gone:
                await self._close(CloseCode.INTERNAL_ERROR)

    async def _run(self) -> None:
        try:
            await self._ws.accept()
        except Exception as exc:  # the client left during the handshake
            raise _Gone() from exc
        auth = await self._authenticate()
        if auth is None:
            return
        principal, auth_rid = auth
        async with self._gw.hub.subscribe(principal.user_id, principal.token_hash) as sub:
            try:
                await self._gw.presence.admit(principal, sub)
            except TooManySessionsError as exc:
                # The sentence names the limit; the close code says it to programs.
                await self._send(p.encode_error(auth_rid, exc, self._session.language))
                await self._close(close_code_for(exc))
                return
            except StoreClosedError:  # the server is stopping
                await self._close(CloseCode.GOING_AWAY)
                return
            try:
                await self._serve(sub, principal, auth_rid)
            finally:
                await self._gw.presence.release(sub)

    async def _serve(self, sub: Subscription, principal: Principal, auth_rid: int) -> None:
        self._sub = sub
        await self._send(self._hello(principal, auth_rid))
        remaining = max(0.0, (principal.expires_at - now_ms()) / 1000)
        expiry = asyncio.get_running_loop().call_later(remaining, sub.fail, CloseCode.TOKEN_EXPIRED)
        tasks = [
            asyncio.create_task(self._read_loop(sub), name="chatd-ws-reader"),
            asyncio.create_task(self._send_loop(sub), name="chatd-ws-sender"),
            asyncio.create_task(sub.closed.wait(), name="chatd-ws-closed"),
        ]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            expiry.cancel()
            for task in tasks:
                task.cancel()
            results = await asyncio.gather(*tasks, return_exceptions=True)
            self._session.close()
        code = sub.close_code
        for result in results[:2]:
            if isinstance(result, DatabaseUnavailable):
                log.warning("connection closed: the database is unavailable")
                code = code or CloseCode.GOING_AWAY
            elif isinstance(result, BaseException) and not isinstance(
                result, (asyncio.CancelledError, _Gone)
            ):
                log_internal("connection", result)
                code = code or CloseCode.INTERNAL_ERROR
        if code is not None and not self._gone:
            await self._close(code)

    async def _close(self, code: CloseCode) -> None:
        try:
            await asyncio.wait_for(self._ws.close(int(code), code.reason), CLOSE_TIMEOUT)
        except Exception as exc:  # already closed, or the peer does not read
            log.debug("close %d not sent: %s", code, type(exc).__name__)
        log.debug("closed connection with %d %s", code, code.reason)

    async def _authenticate(self) -> tuple[Principal, int] | None:
        """The first frame must be ``auth``; answer failures with a close code."""
        try:
            async with asyncio.timeout(self._limits.auth_timeout_seconds):
                message = await self._ws.receive()
        except TimeoutError:
            await self._close(CloseCode.AUTH_TIMEOUT)
            return None
        if message["type"] == "websocket.disconnect":
            return None
        data = message.get("bytes")
        if data is None:
            await self._close(CloseCode.UNSUPPORTED_DATA)
            return None
        try:
            request = p.decode_request(data)
            if not isinstance(request, p.Auth):
                raise AuthError()
            principal = await self._gw.auth.authenticate(request.token)
        except (p.BadRequest, AuthError, UserDisabledError) as exc:
            await self._close(close_code_for(exc))
            return None
        except StoreClosedError:  # the server is stopping
            await self._close(CloseCode.GOING_AWAY)
            return None
        if request.lang is not None:  # the client's own word beats its Accept-Language
            self._session.requested_language = request.lang
        self._session.authenticated(principal, time.monotonic())
        return principal, request.rid

    def _hello(self, principal: Principal, rid: int) -> bytes:
        return p.pack(
            {
                "op": "hello",
                "rid": rid,
                "protocol": p.PROTOCOL_VERSION,
                "server_time": now_ms(),
                "user": user_map(principal),
                "language": self._session.language,
                "session_expires_at": principal.expires_at,
                "terms_version": self._gw.auth.terms_version,
                "terms_url": self._accounts.terms_url,
                "terms_accepted": principal.terms_accepted,
                "password_change_required": principal.password_change_required,
                "limits": self._gw.limits(),
                "epoch": self._gw.reading.epoch,
            }
        )

    # ------------------------------------------------------------------ reader

    async def _read_loop(self, sub: Subscription) -> None:
        while True:
            if not await self._drained(sub):
                return
            try:
                async with asyncio.timeout(self._limits.ws_idle_seconds):
                    message = await self._ws.receive()
            except TimeoutError:
                sub.fail(CloseCode.IDLE_TIMEOUT)
                return
            if message["type"] == "websocket.disconnect":
                self._gone = True
                return
            data = message.get("bytes")
            if data is None:
                sub.fail(CloseCode.UNSUPPORTED_DATA)
                return
            if not self._bucket.allow(time.monotonic()):
                # Every request read gets its answer, this one too; a client that keeps
                # hammering (more refusals in a row than its burst) is then closed, once the
                # replies already due have left (docs/protocol.md §12).  Nothing more is read.
                sub.offer(
                    p.encode_error(_peek_rid(data), RateLimitedError(), self._session.language)
                )
                if self._bucket.strikes > self._limits.ws_burst:
                    sub.finish(CloseCode.RATE_LIMITED)
                    await sub.closed.wait()
                    return
                continue
            reply = await self._handle(sub, data)
            if reply is not None:
                sub.offer(reply)

    async def _drained(self, sub: Subscription) -> bool:
        """Back-pressure: read no request while this session's replies are unsent beyond the
        threshold; a client that does not read them within the stall time is closed 4005."""
        if not sub.paused():
            return True
        try:
            async with asyncio.timeout(self._limits.ws_stall_seconds):
                await sub.wait_drained()
        except TimeoutError:
            log.warning(
                "closing a slow consumer: %d bytes unsent for %d s",
                sub.held_bytes,
                self._limits.ws_stall_seconds,
            )
            sub.fail(CloseCode.SLOW_CONSUMER)
            return False
        return sub.close_code is None

    async def _handle(self, sub: Subscription, data: bytes) -> bytes | SyncJob | None:
        try:
            request = p.decode_request(data)
        except p.BadRequest as bad:
            return p.encode_error(bad.rid, bad.error, self._session.language)
        try:
            self._session.admit(request)
            await self._check_token()
        except AuthError as exc:
            sub.fail(close_code_for(exc))
            return None
        except UserDisabledError:
            sub.fail(CloseCode.USER_DISABLED)
            return None
        except ClientError as exc:
            return p.encode_error(request.rid, exc, self._session.language)
        try:
            return await self._gw.handlers.handle(self._session, sub, request)
        except ClientError as exc:  # StoreClosedError too: the server is stopping
            return p.encode_error(request.rid, exc, self._session.language)
        except DatabaseUnavailable:
            log.warning("op %s: the database is unavailable", type(request).__name__)
            return p.encode_error(request.rid, UnavailableError(), self._session.language)
        except Exception as exc:
            log_internal(f"op {type(request).__name__}", exc)
            return p.encode_error(request.rid, ChatdError(), self._session.language)

    async def _check_token(self) -> None:
        """Authorisation on every operation: expiry here, always; revocation and account
        state by :mod:`chatd.gateway.revocation` for all sessions at once, every second.
        A session still at the terms gate re-reads its principal (at most every
        :data:`TOKEN_CHECK_SECONDS`) so that terms accepted elsewhere take effect."""
        principal = self._session.principal
        assert principal is not None
        if now_ms() >= principal.expires_at:
            raise TokenExpiredError()
        now = time.monotonic()
        if not principal.terms_accepted and self._session.needs_check(now, TOKEN_CHECK_SECONDS):
            self._session.refreshed(await self._gw.auth.revalidate(principal.token_hash), now)

    # ------------------------------------------------------------------ sender

    async def _send(self, data: bytes) -> None:
        try:
            await self._ws.send_bytes(data)
        except Exception as exc:  # WebSocketDisconnect, OSError, RuntimeError after close
            self._gone = True
            raise _Gone() from exc

    async def _send_counted(self, data: bytes) -> None:
        """Write a frame the sender encoded itself (catch-up and ``sync`` pages), counted in
        the session's and the node's budget while it is written."""
        sub = self._sub
        assert sub is not None
        if not sub.hold(len(data)):
            raise _Gone()  # the budget closed the session: its close code says why
        try:
            await self._send(data)
        finally:
            sub.sent(len(data))

    async def _send_loop(self, sub: Subscription) -> None:
        while True:
            item = await sub.queue.get()
            try:
                if isinstance(item, bytes):
                    await self._send(item)
                elif isinstance(item, EventPush):
                    await self._push(item)
                elif isinstance(item, StatePush):
                    if self._session.synced:
                        await self._send(item.data)
                elif isinstance(item, SyncJob):
                    await self._sync(item)
                elif isinstance(item, CloseAfterQueue):
                    sub.fail(item.code)
            finally:
                sub.sent(frame_bytes(item))

    async def _push(self, push: EventPush) -> None:
        action = self._session.on_event(push.conv, push.seq)
        if action is Delivery.SEND:
            self._session.delivered(push.conv, push.seq)
            await self._send(push.data)
        elif action is Delivery.CATCH_UP:
            with contextlib.suppress(ConversationNotFound, ConversationShreddedError):
                await self._catch_up(push.conv)

    async def _catch_up(self, conv: int) -> None:
        """Send what the user may see in ``conv`` after the session's cursor, in order."""
        user = self._session.user_id
        after = self._session.cursor(conv)
        while True:
            page = await self._gw.reading.after(user, conv, after, CATCH_UP_PAGE)
            if page.archived:
                await self._send_counted(p.encode_archived(conv, page.window_start))
            for event in page.events:
                if self._session.delivered(conv, event.seq):
                    await self._send_counted(p.encode_event(event))
            if not page.has_more or not page.events:
                return
            after = page.events[-1].seq

    async def _sync(self, job: SyncJob) -> None:
        user = self._session.user_id
        try:
            heads = await self._gw.reading.heads(user)
        except ClientError as exc:  # StoreClosedError too: the server is stopping
            await self._send(p.encode_error(job.rid, exc, self._session.language))
            return
        known = {head.conv_id: head.last_visible_seq for head in heads}
        expired: list[int] = []
        for conv, last_seq in known.items():
            have = min(job.positions.get(conv, 0), last_seq)
            self._session.resume_from(conv, have)
            if last_seq > have:
                try:
                    await self._catch_up(conv)
                except ConversationShreddedError:
                    expired.append(conv)
        self._session.sync_done()
        try:
            views = await self._gw.reading.chain_views(user, job.checks)
        except ClientError as exc:
            await self._send(p.encode_error(job.rid, exc, self._session.language))
            return
        await self._send(
            p.encode_ok(
                job.rid,
                convs=[[conv, self._session.cursor(conv)] for conv in known],
                unknown=[conv for conv in job.positions if conv not in known],
                expired=expired,
                epoch=self._gw.reading.epoch,
                epoch_changed=job.epoch_changed,
                heads=[p.chain_view_map(view) for view in views],
            )
        )


def _peek_rid(data: bytes) -> int | None:
    try:
        return p.decode_request(data).rid
    except p.BadRequest as bad:
        return bad.rid
