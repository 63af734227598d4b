"""What one gateway runs on: its settings, the services, and its node-local delivery (hub,
fan-out from the broker, the head poll that is the broker's fallback, revocation sweep),
wired once per server by :mod:`chatd.wiring`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chatd.config import Settings
from chatd.core.conversations import (
    MAX_ATTACHMENTS,
    MAX_CLIENT_MSG_ID_CHARS,
    MAX_MEMBERS,
    MAX_NAME_CHARS,
    MAX_TEXT_CHARS,
)
from chatd.gateway import protocol as p
from chatd.gateway.fanout import Fanout
from chatd.gateway.handlers import Handlers
from chatd.gateway.head_poll import HeadPoller
from chatd.gateway.hub import Hub
from chatd.gateway.presence import Presence
from chatd.gateway.revocation import RevocationSweeper
from chatd.services.attachments import AttachmentService
from chatd.services.auth import AuthService
from chatd.services.container import Services
from chatd.services.reading import Reading


@dataclass(slots=True)
class Gateway:
    settings: Settings
    services: Services
    hub: Hub
    fanout: Fanout
    handlers: Handlers
    attachments: AttachmentService
    revocation: RevocationSweeper
    presence: Presence
    head_poll: HeadPoller

    @classmethod
    def build(
        cls,
        settings: Settings,
        services: Services,
        attachments: AttachmentService,
        *,
        node: str | None = None,
    ) -> Gateway:
        listen = settings.gateway
        hub = Hub(listen.ws_queue, listen.ws_queue_bytes, listen.ws_memory_bytes, node=node)
        fanout = Fanout(services.broker, services.reading, hub)
        revocation = RevocationSweeper(hub, services.auth, listen.revocation_seconds)
        presence = Presence(services.sessions, hub.node, listen.sessions_per_user, hub.sessions)
        head_poll = HeadPoller(services.reading, fanout, listen.head_poll_seconds)
        return cls(
            settings,
            services,
            hub,
            fanout,
            Handlers(services),
            attachments,
            revocation,
            presence,
            head_poll,
        )

    @property
    def auth(self) -> AuthService:
        return self.services.auth

    @property
    def reading(self) -> Reading:
        return self.services.reading

    async def start(self) -> None:
        self.fanout.start()
        await self.head_poll.start()
        self.revocation.start()
        await self.presence.forget_previous_life()
        self.presence.start()
        await self.attachments.start()

    def halt(self) -> None:
        """The server begins to stop (before connections are closed): end what would hold
        requests up, the image decodings.  Called from uvicorn's shutdown, no await."""
        self.attachments.halt()

    async def stop(self) -> None:
        self.hub.close_all(p.CloseCode.GOING_AWAY)
        await self.presence.stop()
        await self.revocation.stop()
        await self.attachments.stop()
        await self.services.messaging.drain()
        await self.head_poll.stop()
        await self.fanout.stop()

    def limits(self) -> dict[str, Any]:
        """What the hello frame announces."""
        listen, attachments = self.settings.gateway, self.settings.attachments
        return {
            "max_frame_bytes": listen.max_frame_bytes,
            "max_reply_bytes": p.MAX_REPLY_BYTES,
            "rate_per_second": listen.ws_rate,
            "burst": listen.ws_burst,
            "queue": listen.ws_queue,
            "queue_bytes": listen.ws_queue_bytes,
            "stall_seconds": listen.ws_stall_seconds,
            "sessions_per_user": listen.sessions_per_user,
            "idle_seconds": listen.ws_idle_seconds,
            "window": self.services.reading.window_size,
            "history_max": p.HISTORY_MAX,
            "max_text_chars": MAX_TEXT_CHARS,
            "max_name_chars": MAX_NAME_CHARS,
            "max_members": MAX_MEMBERS,
            "max_client_msg_id_chars": MAX_CLIENT_MSG_ID_CHARS,
            "max_sync_convs": p.MAX_SYNC_CONVS,
            "max_attachment_bytes": attachments.max_bytes,
            "max_attachments": MAX_ATTACHMENTS,
            "attachment_ttl_seconds": attachments.ttl_seconds,
            "uploads_per_minute": attachments.uploads_per_minute,
            "upload_bytes_per_minute": attachments.upload_bytes_per_minute,
        }
