"""The SQL of attachment claims on PostgreSQL: what the writer reads for them while it plans a
batch, and how it sets the references in the batch's transaction.

Two nodes may store, at the same instant, two messages that claim one attachment.  The
claim is written by :func:`write_claims_txn` through ``update_rows_txn``, which locks the
row (``FOR UPDATE``) and only updates it while ``conv_id IS NULL``: the second node waits for
the first's commit, then finds the row claimed, and its batch fails with
:class:`ClaimRace`.  The writer plans that batch again (:mod:`.writer`): the attachment is
then seen as sent, and the rules refuse the second claim.  The row helpers are shared with
SQLite (:mod:`chatd.store.attachment_rows`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

from chatd.core.claims import Claimable
from chatd.core.conversations import Operation, referenced_attachments
from chatd.core.errors import IntegrityError
from chatd.crypto.keyring import KeyRing
from chatd.crypto.row_macs import ATTACHMENTS, RowMacs
from chatd.store.attachment_rows import (
    ATTACHMENT_COLUMNS,
    LIVE_KEY_JOIN,
    attachment_info,
    open_attachment_row,
)
from chatd.store.postgres.db import Connection
from chatd.store.postgres.row_macs import update_rows_txn

log = logging.getLogger("chatd.store.attachments")


class ClaimRace(Exception):
    """An attachment was claimed or discarded by another node after this batch was planned."""


async def load_claimables_txn(
    conn: Connection,
    ring: KeyRing,
    ops: Iterable[Operation],
) -> dict[int, Claimable]:
    """The attachments ``ops`` refer to (those with a live key; absent ones are left out)."""
    wanted = sorted({a for op in ops for a in referenced_attachments(op)})
    if not wanted:
        return {}
    rows = await conn.fetch(
        f"SELECT {ATTACHMENT_COLUMNS}, k.kek_id, k.wrapped FROM attachments a {LIVE_KEY_JOIN}"
        " WHERE a.id = ANY($1::BIGINT[])",
        wanted,
    )
    found: dict[int, Claimable] = {}
    for row in rows:
        values = tuple(row)
        try:
            _dek, name = open_attachment_row(ring, values, values[13], values[14])
        except IntegrityError:
            log.error("attachment %s: its key or name does not open", values[0])
            continue  # refused like a missing one; `chatd verify` names it
        info = attachment_info(values, name)
        found[info.id] = Claimable(
            info.id, info.uploader, info.expires_at, info.conv_id is not None, info.message_ref()
        )
    return found


async def write_claims_txn(
    conn: Connection, macs: RowMacs, claims: Mapping[int, tuple[int, int]]
) -> None:
    """Set the references (inside the batch's transaction, after its events), each with the
    row's new MAC (the reference is covered: chatd.crypto.row_macs)."""
    for attachment_id, (conv, seq) in sorted(claims.items()):  # one lock order on every node
        done = await update_rows_txn(
            conn,
            macs,
            ATTACHMENTS,
            "id = $1 AND conv_id IS NULL",
            (attachment_id,),
            {"conv_id": conv, "seq": seq},
        )
        if not done:
            raise ClaimRace(attachment_id)
