"""The per-conversation hash chain (design §6).

``hash = SHA-256(prev_hash ‖ conv ‖ seq ‖ kind ‖ ciphertext)`` with fixed-width integers and a
length-prefixed kind, so that no two different tuples hash the same bytes.  The first event of
a conversation has ``prev_hash = GENESIS``.  The chain makes a removed, inserted, reordered or
altered row detectable by ``chatd verify`` even where the seal alone would not notice (a row
removed at the end, two whole rows swapped).
"""

from __future__ import annotations

import hashlib
import struct

GENESIS = bytes(32)
_IDS = struct.Struct(">qqH")


def link_hash(prev_hash: bytes, conv_id: int, seq: int, kind: str, ciphertext: bytes) -> bytes:
    kind_bytes = kind.encode()
    return hashlib.sha256(
        b"".join((prev_hash, _IDS.pack(conv_id, seq, len(kind_bytes)), kind_bytes, ciphertext))
    ).digest()
