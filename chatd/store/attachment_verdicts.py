"""The attachment rows' part of ``chatd verify``: each row's reference, data key, sealed name
and thumbnail, and the times it shares with its data key.

Each row's reference must be a message of its uploader; its data key must unwrap (or have been
destroyed with its conversation, at the very time the conversation was shredded: one job
writes both); its sealed name and thumbnail must open.  The row and its key are written in one
transaction with one time, so their ``created_at`` agree.  The files are the attachment
service's to audit; each backend's ``attachment_keys`` gives it the keys of the rows that
pass here.  This module holds the rule (:func:`audit_row`, on a row already read), the same
on every backend; :mod:`chatd.store.sqlite.attachment_audit` and
:mod:`chatd.store.postgres.attachment_audit` read the rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from chatd.core.errors import IntegrityError
from chatd.core.events import EventKind
from chatd.core.records import AttachmentKey
from chatd.crypto.attachment_keys import open_file_name, open_thumbnail, unwrap_attachment_key
from chatd.crypto.envelope import WrappedKey
from chatd.crypto.keyring import KeyRing
from chatd.i18n import N_, Text

AUDIT_PAGE = 200


@dataclass(frozen=True, slots=True)
class RowVerdict:
    """One attachment row audited: its problem, or its data key (None if shredded)."""

    id: int
    conv_id: int | None
    seq: int | None
    size: int
    problem: Text | None
    dek: bytes | None
    shredded: bool  # destroyed with its conversation: fine, and its file is noise

    def key(self) -> AttachmentKey:
        return AttachmentKey(self.id, self.conv_id, self.seq, self.size, self.dek, self.shredded)


def audit_row(ring: KeyRing, row: Sequence[Any]) -> RowVerdict:
    aid, size, name, thumb, conv, seq, kek_id, wrapped, has_key, shredded, kind, sender = row[:12]
    uploader, created_at, key_created_at, key_destroyed_at = row[12:16]
    attachment_id = int(aid)
    conv_id = None if conv is None else int(conv)
    seq_no = None if seq is None else int(seq)

    def verdict(problem: Text | None, dek: bytes | None = None, dead: bool = False) -> RowVerdict:
        return RowVerdict(attachment_id, conv_id, seq_no, int(size), problem, dek, dead)

    if conv is not None and (kind != EventKind.MESSAGE or sender != uploader):
        return verdict(Text(N_("its reference is not a message of its uploader")))
    if not has_key:
        return verdict(Text(N_("it has no data key")))
    if key_created_at != created_at:  # one transaction, one time
        return verdict(Text(N_("its creation time differs from its data key's")))
    if wrapped is None:
        if conv is not None and shredded is not None:
            if key_destroyed_at != shredded:
                return verdict(
                    Text(N_("its data key was destroyed at another time than its conversation"))
                )
            return verdict(None, dead=True)  # shredded with its conversation: fine
        return verdict(Text(N_("its data key was destroyed but the attachment is in use")))
    try:
        dek = unwrap_attachment_key(ring, WrappedKey(str(kek_id), bytes(wrapped)), attachment_id)
    except IntegrityError as exc:
        return verdict(Text(N_("data key: {reason}"), {"reason": exc.text}))
    try:
        open_file_name(dek, attachment_id, bytes(name))
    except IntegrityError:
        return verdict(Text(N_("the sealed file name does not open")))
    if thumb is not None:
        try:
            open_thumbnail(dek, attachment_id, bytes(thumb))
        except IntegrityError:
            return verdict(Text(N_("the sealed thumbnail does not open")))
    return verdict(None, dek)
