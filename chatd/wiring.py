"""The composition root: which store, which broker, which services, which transports.

Everything a process runs is built here from the settings, once, and nowhere else: the
``chatd`` admin command takes the store and the services; ``chatd serve`` adds the
attachment service and the gateway.  A new backend (PostgreSQL) or broker (NATS) is chosen
here by the settings; the layers above only see the protocols.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from chatd.broker.base import Broker
from chatd.broker.memory import MemoryBroker
from chatd.config import Settings
from chatd.crypto.keyring import KeyRing, load_key_file
from chatd.services.attachments import AttachmentService
from chatd.services.container import Services
from chatd.store.contract import Store
from chatd.store.sqlite import SqliteStore

if TYPE_CHECKING:  # the web stack is imported only by those who serve
    from chatd.gateway.context import Gateway


def open_store(settings: Settings, ring: KeyRing | None = None) -> Store:
    """The store the settings name (not yet opened: ``async with`` it).

    PostgreSQL is never migrated by opening it: ``chatd migrate`` does that, as the owner
    role, once for every node; a node finding an older schema refuses to start."""
    ring = ring or load_key_file(settings.store.key_file_path)
    dsn = settings.store.postgres_dsn
    if dsn is not None:
        from chatd.store.postgres.store import PostgresStore  # asyncpg only where it is used

        return PostgresStore(
            dsn,
            ring,
            checkpoint_log=settings.store.checkpoint_log_path,
            visible_window=settings.store.visible_window,
            max_batch=settings.store.max_batch,
            checkpoint_seconds=settings.store.checkpoint_seconds,
            migrate=False,
        )
    return SqliteStore(
        settings.store.database_path,
        ring,
        visible_window=settings.store.visible_window,
        synchronous=settings.store.sqlite_synchronous,
        max_batch=settings.store.max_batch,
        checkpoint_log=settings.store.checkpoint_log_path,
        checkpoint_seconds=settings.store.checkpoint_seconds,
    )


def node_id(settings: Settings) -> str:
    """This process's name among the nodes: ``CHATD_NODE_ID``, else a fresh random one."""
    return settings.cluster.node_id or uuid.uuid4().hex[:12]


def make_broker(settings: Settings, *, required: bool = True, node: str | None = None) -> Broker:
    """The broker the settings name: NATS with ``CHATD_BROKER_URL``, else in-process.

    With NATS even one node gains: an admin command (``chatd user disable``) publishes its
    session ends there, and the server closes those sockets at once instead of at its next
    revocation sweep.  ``required``: a server refuses to start deaf to the other nodes; an
    admin command goes on without NATS (disabling an account must work while NATS is down;
    the server's sweep closes the sessions within a second)."""
    cluster = settings.cluster
    if not cluster.broker_url:
        return MemoryBroker()
    from chatd.broker.nats import NatsBroker  # nats-py is loaded only where it is used

    tls = None
    if cluster.broker_url.startswith("tls://"):
        from chatd.broker.tls import tls_context

        tls = tls_context(cluster.broker_ca_file, cluster.broker_cert_file, cluster.broker_key_file)
    return NatsBroker(cluster.broker_url, node or node_id(settings), required=required, tls=tls)


def build_services(settings: Settings, store: Store, broker: Broker) -> Services:
    return Services.build(
        store,
        broker,
        session_hours=settings.accounts.session_hours,
        terms_version=settings.accounts.terms_version,
        login_limits=settings.accounts.login_limits,
    )


@dataclass(frozen=True, slots=True)
class Process:
    """An opened store, its broker and the services over them."""

    settings: Settings
    store: Store
    broker: Broker
    services: Services
    node_id: str  # the same for the broker, the hub's session ids and the presence rows


@asynccontextmanager
async def running(
    settings: Settings, broker: Broker | None = None, *, serving: bool = False
) -> AsyncIterator[Process]:
    """Open the store and start the broker; stop and close them however the body ends.
    ``serving``: ``chatd serve``, which needs the broker (see :func:`make_broker`)."""
    node = node_id(settings)
    chosen = broker or make_broker(settings, required=serving, node=node)
    async with open_store(settings) as store:
        await chosen.start()
        try:
            services = build_services(settings, store, chosen)
            yield Process(settings, store, chosen, services, node)
        finally:
            await chosen.stop()


def attachment_files(settings: Settings, store: Store) -> AttachmentService:
    """The attachment service over ``store``: the owner of the attachment files."""
    return AttachmentService.from_settings(
        settings.attachments, settings.store.attachments_dir, store
    )


def build_gateway(process: Process) -> Gateway:
    from chatd.gateway.context import Gateway

    attachments = attachment_files(process.settings, process.store)
    return Gateway.build(process.settings, process.services, attachments, node=process.node_id)
