"""The per-conversation hash chain (design §6).

``hash = SHA-256(prev_hash ‖ conv ‖ seq ‖ kind ‖ ciphertext)`` with fixed-width integers and a
length-prefixed kind, so that no two different tuples hash the same bytes.  The first event of
a conversation has ``prev_hash = GENESIS``.  The chain makes a removed, inserted, reordered or
altered row detectable by ``chatd verify`` even where the seal alone would not notice (a row
removed at the end, two whole rows swapped).

The administrators' audit log (:mod:`chatd.core.audit`) has a chain of its own,
:func:`audit_link_hash`: each record's hash covers the previous record's hash and every field
of its own, each length-prefixed after a domain tag, so that an edited, removed, inserted or
reordered record breaks the chain from that place on.  It is keyed (HMAC-SHA256 under the
audit log's data key, which only the key file unwraps): someone with the database alone
cannot rewrite a record and recompute the chain after it.
"""

from __future__ import annotations

import hashlib
import hmac
import struct

from chatd.core.audit import AdminAction

GENESIS = bytes(32)
_IDS = struct.Struct(">qqH")


def link_hash(prev_hash: bytes, conv_id: int, seq: int, kind: str, ciphertext: bytes) -> bytes:
    kind_bytes = kind.encode()
    return hashlib.sha256(
        b"".join((prev_hash, _IDS.pack(conv_id, seq, len(kind_bytes)), kind_bytes, ciphertext))
    ).digest()


_AUDIT_DOMAIN = b"chatd admin audit v1\x00"
_AUDIT_PLACE = struct.Struct(">qq")
_LENGTH = struct.Struct(">I")
_COUNT = struct.Struct(">q")


def _text(value: str) -> bytes:
    raw = value.encode()
    return _LENGTH.pack(len(raw)) + raw


def audit_link_hash(
    key: bytes, prev_hash: bytes, seq: int, at_ms: int, action: AdminAction
) -> bytes:
    """The hash of audit record ``seq``: HMAC-SHA256 under ``key`` over the domain tag,
    ``prev_hash`` (GENESIS for the first), the place and time, the actor, the action, its
    target and its counts."""
    parts = [
        _AUDIT_DOMAIN,
        prev_hash,
        _AUDIT_PLACE.pack(seq, at_ms),
        _text(action.actor.kind),
        _text(action.actor.name),
        _text(action.kind),
        _text(action.target),
        _LENGTH.pack(len(action.counts)),
    ]
    for name, value in sorted(action.counts.items()):
        parts += [_text(name), _COUNT.pack(value)]
    return hmac.new(key, b"".join(parts), hashlib.sha256).digest()
