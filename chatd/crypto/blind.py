"""Keyed hashes ("blind indexes"): equal inputs give equal digests, which only a holder of the
key can compute — so a value can be counted and looked up without being kept in clear.

Used for what the store must match but not keep: the logins and client addresses of login
attempts (a password typed into the login field must not sit in the database).  The key is
derived from a data key, so it is as secret as the data key file makes it and survives KEK
rotation (rotation re-wraps data keys, it does not change them).
"""

from __future__ import annotations

import hashlib
import hmac

BLIND_BYTES = 16  # 128 bits: no collisions in practice, half the size of a full digest


def derive_key(data_key: bytes, label: bytes) -> bytes:
    """A key for one purpose (``label``) from a data key: HMAC-SHA256(data_key, label)."""
    return hmac.new(data_key, b"chatd-derive\x00" + label, hashlib.sha256).digest()


def blind(key: bytes, domain: bytes, value: str) -> bytes:
    """The keyed hash of ``value`` in ``domain`` (so that a login and an address equal as
    text never collide)."""
    data = domain + b"\x00" + value.encode("utf-8", "surrogatepass")
    return hmac.new(key, data, hashlib.sha256).digest()[:BLIND_BYTES]
