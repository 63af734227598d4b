"""One method per operation: typed request → service call → encoded reply.

No business rule lives here: who may do what is decided by :mod:`chatd.core.conversations` inside
the store's writer, what a user may read by the store's queries, the inbox by
:mod:`chatd.services.inbox`, sessions by :mod:`chatd.services.auth`.  This module only translates.

Mutations run as their own task, shielded from the connection: if the client disconnects
while its operation is being committed, the operation still completes and its events are
still published (the client learns the outcome on retry, by ``client_msg_id``).  The publish
happens right after ``store.apply`` returns, with no ``await`` in between (see
:mod:`chatd.gateway.fanout`).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from chatd.core.accounts import Principal
from chatd.core.conversations import (
    AddMember,
    CreateConversation,
    Leave,
    MessageBody,
    Operation,
    PostMessage,
    Rename,
)
from chatd.core.errors import UserNotFound
from chatd.core.records import AppendResult, EventPage, User
from chatd.gateway import protocol as p
from chatd.gateway.fanout import Fanout
from chatd.gateway.hub import Subscription
from chatd.gateway.session import Session
from chatd.services.auth import AuthService
from chatd.services.inbox import Inbox, InboxEntry
from chatd.store.contract import Store


@dataclass(frozen=True, slots=True)
class SyncJob:
    """A ``sync`` request, run by the connection's sender so that its events, the live
    pushes and the final ``ok`` leave in one order."""

    rid: int
    positions: dict[int, int]


Reply = bytes | SyncJob


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def user_map(principal: Principal) -> dict[str, Any]:
    """The logged-in user as ``hello`` and the login answer show them."""
    profile = principal.profile
    return {
        "id": principal.user_id,
        "login": principal.login,
        "first_name": profile.first_name,
        "last_name": profile.last_name,
        "profession": profile.profession,
        "structure": profile.structure,
        "language": principal.language,
    }


def public_profile(user: User) -> dict[str, Any]:
    p_ = user.profile
    return {
        "id": user.id,
        "first_name": p_.first_name,
        "last_name": p_.last_name,
        "profession": p_.profession,
        "structure": p_.structure,
        "disabled": user.disabled,
    }


def entry_map(entry: InboxEntry) -> dict[str, Any]:
    return {
        "conv": entry.conv_id,
        "name": entry.name,
        "members": list(entry.members),
        "member": entry.is_member,
        "last_seq": entry.last_seq,
        "read_seq": entry.read_seq,
        "unread": entry.unread,
        "last": None if entry.preview is None else p.event_map(entry.preview),
    }


def page_fields(page: EventPage, newest_first_cut: bool) -> dict[str, Any]:
    """The reply fields of a history page, cut to :data:`protocol.MAX_REPLY_BYTES`."""
    events = list(page.events)
    if newest_first_cut:  # reading backwards: keep the newest, drop the oldest
        kept = list(reversed(p.fit_events(reversed(events))))
    else:
        kept = p.fit_events(events)
    cut = len(kept) < len(events)
    return {
        "conv": page.conv_id,
        "events": kept,
        "archived": page.archived and not cut,
        "has_more": page.has_more or cut,
        "window_start": page.window_start,
    }


class Handlers:
    def __init__(self, store: Store, auth: AuthService, inbox: Inbox, fanout: Fanout) -> None:
        self._store = store
        self._auth = auth
        self._inbox = inbox
        self._fanout = fanout
        self._inflight: set[asyncio.Task[AppendResult]] = set()

    async def handle(self, session: Session, sub: Subscription, request: p.Request) -> Reply:
        user = session.user_id
        rid = request.rid
        if not isinstance(request, p.Ping):
            await self._password_gate(session)
        match request:
            case p.Ping():
                return p.encode_ok(rid, server_time=now_ms())
            case p.AcceptTerms(version=version):
                assert session.principal is not None
                principal = await self._auth.accept_terms(session.principal, version)
                session.refreshed(principal, time.monotonic())
                return p.encode_ok(rid, terms_version=version)
            case p.Create():
                first = None
                if request.text is not None or request.attachments:
                    first = MessageBody(request.text or "", request.tag, request.attachments)
                return await self._mutate(
                    rid,
                    CreateConversation(
                        user, request.members, request.name, request.client_msg_id, first
                    ),
                )
            case p.Send():
                body = MessageBody(request.text, request.tag, request.attachments)
                return await self._mutate(
                    rid, PostMessage(request.conv, user, body, request.client_msg_id)
                )
            case p.Add():
                return await self._mutate(
                    rid, AddMember(request.conv, user, request.user, request.client_msg_id)
                )
            case p.Leave():
                return await self._mutate(rid, Leave(request.conv, user, request.client_msg_id))
            case p.Rename():
                return await self._mutate(
                    rid, Rename(request.conv, user, request.name, request.client_msg_id)
                )
            case p.ListConversations():
                entries = await self._inbox.conversations(user)
                return p.encode_ok(rid, conversations=[entry_map(e) for e in entries])
            case p.History():
                return await self._history(user, request)
            case p.MarkRead():
                state = await self._inbox.mark_read(user, request.conv, request.seq)
                self._fanout.publish_state(
                    user, p.encode_state(state.conv_id, state.read_seq, state.unread), sub
                )
                return p.encode_ok(
                    rid, conv=state.conv_id, read_seq=state.read_seq, unread=state.unread
                )
            case p.Sync():
                return SyncJob(rid, dict(request.convs))
            case p.Users():
                return await self._users(rid, request.ids, request.logins)
            case p.SetLanguage(language=chosen):
                assert session.principal is not None
                principal = await self._auth.set_language(session.principal, chosen)
                session.refreshed(principal, time.monotonic())
                return p.encode_ok(rid, language=chosen, speaking=session.language)
            case p.Auth():  # refused by Session.admit before it gets here
                raise AssertionError("auth is handled by the connection")
        raise AssertionError(f"unhandled request {type(request).__name__}")  # pragma: no cover

    async def _password_gate(self, session: Session) -> None:
        """After an administrator's reset, only ``ping`` passes until the password is changed
        (over HTTP: ``POST /v1/auth/password``).  A gated session re-reads its principal on
        each refused operation, so that the change, made on another connection, opens it."""
        principal = session.principal
        assert principal is not None
        if principal.password_change_required:
            principal = await self._auth.revalidate(principal.token_hash)
            session.refreshed(principal, time.monotonic())
            principal.require_usable()

    # ------------------------------------------------------------------ mutations

    async def _mutate(self, rid: int, op: Operation) -> bytes:
        task = asyncio.get_running_loop().create_task(self._apply_and_publish(op))
        self._inflight.add(task)
        task.add_done_callback(_forget(self._inflight))
        result = await asyncio.shield(task)
        return p.encode_ok(
            rid,
            conv=result.conv_id,
            first_seq=result.first_seq,
            last_seq=result.last_seq,
            duplicate=result.duplicate,
        )

    async def _apply_and_publish(self, op: Operation) -> AppendResult:
        result = await self._store.apply(op)
        self._fanout.publish(result)  # no await in between: see chatd.gateway.fanout
        return result

    async def drain(self) -> None:
        """Wait for the mutations still being committed (at shutdown)."""
        if self._inflight:
            await asyncio.gather(*self._inflight, return_exceptions=True)

    # ------------------------------------------------------------------ reads

    async def _history(self, user: int, request: p.History) -> bytes:
        if request.after is not None:
            page = await self._store.events_after(user, request.conv, request.after, request.limit)
            return p.encode_ok(request.rid, **page_fields(page, newest_first_cut=False))
        before = p.MAX_INT + 1 if request.before is None else request.before
        page = await self._store.events_before(user, request.conv, before, request.limit)
        return p.encode_ok(request.rid, **page_fields(page, newest_first_cut=True))

    async def _users(self, rid: int, ids: tuple[int, ...], logins: tuple[str, ...]) -> bytes:
        found: list[dict[str, Any]] = []
        unknown: list[int] = []
        unknown_logins: list[str] = []
        for user_id in dict.fromkeys(ids):
            try:
                found.append(public_profile(await self._store.get_user(user_id)))
            except UserNotFound:
                unknown.append(user_id)
        # A login is shown only to someone who already typed it: looking up by id never
        # reveals one (logins are half of a credential).
        for login in dict.fromkeys(logins):
            user = await self._store.find_user_by_login(login)
            if user is None:
                unknown_logins.append(login)
            else:
                found.append({**public_profile(user), "login": user.login})
        return p.encode_ok(rid, users=found, unknown=unknown, unknown_logins=unknown_logins)


def _forget(tasks: set[asyncio.Task[AppendResult]]) -> Any:
    def done(task: asyncio.Task[AppendResult]) -> None:
        tasks.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: the caller may be gone; the error was answered

    return done
