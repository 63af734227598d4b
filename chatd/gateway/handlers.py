"""One method per operation: typed request → service call → encoded reply.

No business rule lives here, and no store: every operation is one call to a service
(:mod:`chatd.services`) — changes through :class:`~chatd.services.messaging.Messaging`, the
one door that commits then publishes; reads through
:class:`~chatd.services.reading.Reading`; the inbox, sessions and the directory through
theirs.  This module only translates.
"""

from __future__ import annotations

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
from chatd.core.records import EventPage, User
from chatd.gateway import protocol as p
from chatd.gateway.hub import Subscription
from chatd.gateway.session import Session
from chatd.services.container import Services
from chatd.services.inbox import InboxEntry


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
    def __init__(self, services: Services) -> None:
        self._auth = services.auth
        self._inbox = services.inbox
        self._messaging = services.messaging
        self._reading = services.reading
        self._directory = services.directory

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
                state = await self._inbox.mark_read(user, request.conv, request.seq, origin=sub.id)
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
        result = await self._messaging.apply(op)
        return p.encode_ok(
            rid,
            conv=result.conv_id,
            first_seq=result.first_seq,
            last_seq=result.last_seq,
            duplicate=result.duplicate,
        )

    # ------------------------------------------------------------------ reads

    async def _history(self, user: int, request: p.History) -> bytes:
        if request.after is not None:
            page = await self._reading.after(user, request.conv, request.after, request.limit)
            return p.encode_ok(request.rid, **page_fields(page, newest_first_cut=False))
        before = p.MAX_INT + 1 if request.before is None else request.before
        page = await self._reading.before(user, request.conv, before, request.limit)
        return p.encode_ok(request.rid, **page_fields(page, newest_first_cut=True))

    async def _users(self, rid: int, ids: tuple[int, ...], logins: tuple[str, ...]) -> bytes:
        by_id, unknown = await self._directory.by_ids(ids)
        by_login, unknown_logins = await self._directory.by_logins(logins)
        # A login is shown only to someone who already typed it: looking up by id never
        # reveals one (logins are half of a credential).
        found = [public_profile(user) for user in by_id]
        found += [{**public_profile(user), "login": user.login} for user in by_login]
        return p.encode_ok(rid, users=found, unknown=unknown, unknown_logins=unknown_logins)
