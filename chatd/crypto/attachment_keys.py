"""Attachment ids, per-attachment data keys and sealed file names (design §6).

Every attachment has its own data key (DEK), stored only wrapped by the active KEK under
``KeyScope("attachment", attachment_id, 1)``: a wrapped key copied onto another attachment's row
does not unwrap.  The DEK seals the file's chunks (:mod:`chatd.crypto.chunks`) and the original
file name (domain ``b"fn"``), so neither the content nor the name is readable without the KEK,
and destroying the wrapped key crypto-shreds both.

Attachment ids are random 63-bit integers chosen before anything is written: the encrypted file
is put in place under its id first, and only then is the database row that names it inserted,
so a crash never leaves a row pointing to a missing file (an orphan file, found by listing the
blob store against the table, is harmless and can be removed).
"""

from __future__ import annotations

import secrets

from chatd.core.errors import IntegrityError
from chatd.crypto.envelope import (
    KeyScope,
    Sealer,
    WrappedKey,
    new_data_key,
    unwrap_data_key,
    wrap_data_key,
)
from chatd.crypto.keyring import KeyRing
from chatd.i18n import N_

ATTACHMENT_SCOPE = "attachment"
ATTACHMENT_KEY_VERSION = 1
NAME_DOMAIN = b"fn"
_NAME_SEQ = 0
_NAME_KIND = "name"


def new_attachment_id() -> int:
    """A random id in ``1 … 2**63 - 1`` (fits SQLite's INTEGER and the chunk AAD)."""
    while True:
        value = secrets.randbits(63)
        if value:
            return value


def attachment_scope(attachment_id: int) -> KeyScope:
    return KeyScope(ATTACHMENT_SCOPE, attachment_id, ATTACHMENT_KEY_VERSION)


def new_attachment_key(ring: KeyRing, attachment_id: int) -> tuple[bytes, WrappedKey]:
    """A fresh DEK for one attachment, and the same key wrapped by the active KEK."""
    dek = new_data_key()
    return dek, wrap_data_key(ring, dek, attachment_scope(attachment_id))


def unwrap_attachment_key(ring: KeyRing, wrapped: WrappedKey, attachment_id: int) -> bytes:
    return unwrap_data_key(ring, wrapped, attachment_scope(attachment_id))


def _name_sealer(dek: bytes, attachment_id: int) -> Sealer:
    return Sealer(dek, ATTACHMENT_KEY_VERSION, NAME_DOMAIN, attachment_id)


def seal_file_name(dek: bytes, attachment_id: int, name: str) -> bytes:
    """The file name sealed under the attachment's DEK, bound to its id."""
    return _name_sealer(dek, attachment_id).seal(_NAME_SEQ, _NAME_KIND, name.encode())


def open_file_name(dek: bytes, attachment_id: int, sealed: bytes) -> str:
    """The file name sealed by :func:`seal_file_name`; IntegrityError if it does not open."""
    raw = _name_sealer(dek, attachment_id).open(_NAME_SEQ, _NAME_KIND, sealed)
    try:
        return raw.decode()
    except UnicodeDecodeError:
        raise IntegrityError(
            N_("The name of attachment {attachment} is not UTF-8."), attachment=str(attachment_id)
        ) from None


THUMBNAIL_DOMAIN = b"tn"
_THUMBNAIL_KIND = "thumbnail"


def _thumbnail_sealer(dek: bytes, attachment_id: int) -> Sealer:
    return Sealer(dek, ATTACHMENT_KEY_VERSION, THUMBNAIL_DOMAIN, attachment_id)


def seal_thumbnail(dek: bytes, attachment_id: int, data: bytes) -> bytes:
    """The thumbnail (JPEG) sealed under the attachment's DEK, bound to its id."""
    return _thumbnail_sealer(dek, attachment_id).seal(_NAME_SEQ, _THUMBNAIL_KIND, data)


def open_thumbnail(dek: bytes, attachment_id: int, sealed: bytes) -> bytes:
    return _thumbnail_sealer(dek, attachment_id).open(_NAME_SEQ, _THUMBNAIL_KIND, sealed)
