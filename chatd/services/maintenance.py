"""The operator's maintenance of the store: master keys, retention, the epoch, and the
administrators' audit log that records them.

What ``chatd keys …``, ``chatd retention run --apply`` and ``chatd store new-epoch`` change in
the database goes through here, and each change names who made it (``by``).  Where the store
changes, the record is appended in the change's own transaction (re-wrapped keys, a shredded
conversation, a new epoch).  Retiring a master key changes only the key file, which the admin
command writes: :meth:`Maintenance.record_key_retired` is then called **before** the file is
rewritten, so that a retirement never happens unrecorded; if writing the file then fails, the
record names a retirement that did not happen, and ``chatd keys list`` still shows the key.
"""

from __future__ import annotations

import asyncio
import os
import pwd
from collections.abc import AsyncIterator
from dataclasses import replace

from chatd.core.audit import ActionKind, Actor, AdminAction, AuditEntry, AuditQuery
from chatd.core.checkpoints import Checkpoint
from chatd.core.errors import ChatdError
from chatd.crypto.keyring import KeyRing
from chatd.i18n import Text
from chatd.store.contract import Store


def os_operator() -> Actor:
    """Who runs this process: the OS account of its effective user (under ``sudo``: root,
    the account whose rights acted), or ``uid N`` when no account has that id."""
    uid = os.geteuid()
    try:
        return Actor.os_user(pwd.getpwuid(uid).pw_name)
    except KeyError:  # a container's uid with no passwd entry
        return Actor.os_user(f"uid {uid}")


class Maintenance:
    def __init__(self, store: Store) -> None:
        self._store = store

    async def rewrap_data_keys(self, ring: KeyRing, *, by: Actor) -> int:
        """Re-wrap every live data key under ``ring``'s active key; recorded with it."""
        return await self._store.rewrap_data_keys(
            ring, audit=AdminAction(by, ActionKind.KEY_ROTATED)
        )

    async def record_key_retired(self, key_id: str, *, by: Actor) -> AuditEntry:
        """Record that ``key_id`` is being retired (call it before rewriting the key file)."""
        return await self._store.append_admin_action(
            AdminAction(by, ActionKind.KEY_RETIRED, key_id)
        )

    async def shred_conversation(self, conv_id: int, *, by: Actor) -> list[int]:
        """Retention: destroy the conversation's keys, recorded with them; the attachment
        ids whose files the caller then removes."""
        return await self._store.shred_conversation(
            conv_id, audit=AdminAction(by, ActionKind.CONVERSATION_SHREDDED)
        )

    async def store_health(self, bound_seconds: float = 2.0) -> tuple[str, tuple[Text, ...]]:
        """``ok`` or ``unavailable`` (the database did not answer a read within the bound,
        or failed), and why the checkpoint log cannot be used, if it cannot (``/healthz``)."""
        try:
            async with asyncio.timeout(bound_seconds):
                await self._store.ping()
        except (TimeoutError, ChatdError):
            return "unavailable", ()
        return "ok", self._store.checkpoint_state().problems

    async def declare_new_epoch(self, *, by: Actor) -> str:
        return await self._store.declare_new_epoch(audit=AdminAction(by, ActionKind.EPOCH_DECLARED))

    async def declare_rewind(self, departures: int, *, by: Actor) -> Checkpoint:
        """The operator restored an older database on purpose: a new epoch, and a checkpoint
        of the database as it is, from which later checks start."""
        action = AdminAction(by, ActionKind.REWIND_DECLARED).with_counts(departures=departures)
        return await self._store.declare_rewind(audit=action)

    async def audit_trail(self, query: AuditQuery) -> AsyncIterator[AuditEntry]:
        """Every record ``query`` selects, oldest first, page after page."""
        while page := await self._store.admin_actions(query):
            for entry in page:
                yield entry
            query = replace(query, after_seq=page[-1].seq)
