"""The SQL of attachment claims, and the attachment-row helpers the other modules share.

The claim rules are :mod:`chatd.core.claims`; here is what the writer reads for them while it
plans a batch (:func:`load_claimables_txn`) and how it sets the references in the batch's
transaction (:func:`write_claims_txn`), after the events whose triggers they look up.  The
row helpers (:data:`ATTACHMENT_COLUMNS`, :data:`LIVE_KEY_JOIN`, :func:`attachment_info`,
:func:`open_attachment_row`) are shared by every backend (:mod:`chatd.store.attachment_rows`)
and re-exported here for :mod:`.attachments`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence

import aiosqlite

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
from chatd.store.sqlite.row_macs import update_rows_txn

log = logging.getLogger("chatd.store.attachments")
MAX_VARIABLES = 900  # below SQLite's default limit of 999 bound parameters per statement


def chunks(items: Sequence[int], size: int = MAX_VARIABLES) -> Iterable[Sequence[int]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# ---------------------------------------------------------------------------- claiming


async def load_claimables_txn(
    conn: aiosqlite.Connection,
    ring: KeyRing,
    ops: Iterable[Operation],
    in_flight: Mapping[int, tuple[int, int]],
) -> dict[int, Claimable]:
    """The attachments ``ops`` refer to (those with a live key; absent ones are left out).

    ``in_flight`` are the claims of the batch being committed: they count as sent.
    """
    wanted = sorted({a for op in ops for a in referenced_attachments(op)})
    found: dict[int, Claimable] = {}
    for chunk in chunks(wanted):
        rows = await conn.execute_fetchall(
            f"SELECT {ATTACHMENT_COLUMNS}, k.kek_id, k.wrapped FROM attachments a {LIVE_KEY_JOIN}"
            f" WHERE a.id IN ({','.join('?' * len(chunk))})",
            list(chunk),
        )
        for row in rows:
            try:
                _dek, name = open_attachment_row(ring, row, row[13], row[14])
            except IntegrityError:
                log.error("attachment %s: its key or name does not open", row[0])
                continue  # refused like a missing one; `chatd verify` names it
            info = attachment_info(row, name)
            sent = info.conv_id is not None or info.id in in_flight
            found[info.id] = Claimable(
                info.id, info.uploader, info.expires_at, sent, info.message_ref()
            )
    return found


async def write_claims_txn(
    conn: aiosqlite.Connection, macs: RowMacs, claims: Mapping[int, tuple[int, int]]
) -> None:
    """Set the references (inside the batch's transaction, after its events), each with the
    row's new MAC (the reference is covered: chatd.crypto.row_macs)."""
    updated = 0
    for attachment_id, (conv, seq) in claims.items():
        done = await update_rows_txn(
            conn,
            macs,
            ATTACHMENTS,
            "id = ? AND conv_id IS NULL",
            (attachment_id,),
            {"conv_id": conv, "seq": seq},
        )
        updated += len(done)
    if updated != len(claims):
        # Discarded or claimed by another process after the batch was planned.
        raise RuntimeError("an attachment changed while its message was being stored")


__all__ = [
    "ATTACHMENT_COLUMNS",
    "LIVE_KEY_JOIN",
    "attachment_info",
    "chunks",
    "load_claimables_txn",
    "open_attachment_row",
    "write_claims_txn",
]
