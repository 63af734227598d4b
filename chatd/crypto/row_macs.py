"""Row MACs: the security-relevant columns kept in clear, authenticated with the key file.

Someone who can write the database file (a sqlite3 shell, not the key file) could otherwise
un-revoke a token, copy one password hash onto every account, re-enable a disabled account,
or change an attachment's type or size, and no seal or chain would notice: those columns are
clear metadata the server needs.  So each such row carries ``mac``: an HMAC-SHA256 over its
covered columns (:data:`COLUMNS`) under a key derived from a KEK of the key file
(:meth:`KeyRing.derived` with :data:`LABEL`), which is never in the database, not even wrapped.

The stored value is the 4-byte tag of the KEK that made it (:func:`kid_tag`), then the 32-byte
HMAC: a MAC is made under the active KEK and checked under the KEK its tag names, so that
rotation can re-MAC rows while the old key still opens the rows it has not reached yet.

The message is canonical: a domain string, the table's name (so a MAC never fits another
table), then every covered column, each typed and length-prefixed.  The row's identity (its
primary key) is covered, so a MAC copied onto another row does not fit it.  An integer is
not a string is not a blob: a value the attacker stored with another SQLite type fails.

Pure: no I/O.  The SQL around it is :mod:`chatd.store.sqlite.row_macs`.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
from collections.abc import Sequence

from chatd.crypto.keyring import KeyRing

LABEL = b"row-mac v1"
TAG_BYTES = 4
DIGEST_BYTES = 32
MAC_BYTES = TAG_BYTES + DIGEST_BYTES
_DOMAIN = b"chatd row mac v1\x00"

USERS = "users"
AUTH_TOKENS = "auth_tokens"
ATTACHMENTS = "attachments"
MEMBERSHIPS = "memberships"
IDEMPOTENCY_KEYS = "idempotency_keys"  # migration 11: a retry's key and the result it gets

# The covered columns of each table, in MAC order; the primary key's columns are among them.
# Not covered, on purpose: a token's last_seen_at (the heartbeat updates it), an account's
# language and accepted terms (preferences), what is sealed already (profiles, names).
COLUMNS: dict[str, tuple[str, ...]] = {
    USERS: ("id", "login", "password_hash", "disabled", "must_change_password"),
    AUTH_TOKENS: ("token_hash", "user_id", "created_at", "expires_at", "revoked_at"),
    ATTACHMENTS: (
        "id",
        "uploader",
        "size",
        "kind",
        "mime",
        "width",
        "height",
        "conv_id",
        "seq",
        "expires_at",
    ),
    MEMBERSHIPS: ("conv_id", "user_id", "joined_seq", "left_seq"),
    IDEMPOTENCY_KEYS: (
        "scope_conv",
        "sender",
        "client_msg_id",
        "conv_id",
        "first_seq",
        "last_seq",
    ),
}
PRIMARY_KEYS: dict[str, tuple[str, ...]] = {
    USERS: ("id",),
    AUTH_TOKENS: ("token_hash",),
    ATTACHMENTS: ("id",),
    MEMBERSHIPS: ("conv_id", "user_id", "joined_seq"),
    IDEMPOTENCY_KEYS: ("scope_conv", "sender", "client_msg_id"),
}

Field = int | str | bytes | None


class Verdict(enum.Enum):
    OK = "ok"
    MISSING = "missing"  # NULL: a row the MACs never reached, or whose MAC was removed
    MALFORMED = "malformed"  # not a blob of MAC_BYTES
    UNKNOWN_KEY = "unknown key"  # made under a KEK that is not in the key file
    MISMATCH = "mismatch"  # the row is not the one that was MAC'd


def kid_tag(kid: str) -> bytes:
    """The 4 bytes naming KEK ``kid`` in a MAC: the id itself (8 hex digits, as chatd makes
    them), else a hash of it (a key file written by hand)."""
    try:
        raw = bytes.fromhex(kid)
    except ValueError:
        raw = b""
    if len(raw) == TAG_BYTES:
        return raw
    return hashlib.sha256(kid.encode("utf-8", "surrogatepass")).digest()[:TAG_BYTES]


def _length_prefixed(out: bytearray, data: bytes) -> None:
    out += len(data).to_bytes(4, "big")
    out += data


def encode(table: str, fields: Sequence[object]) -> bytes:
    """The canonical message of a row.  TypeError (or ValueError) for a value no chatd row
    holds: a float, a number beyond 64 bits, text that is not Unicode."""
    if table not in COLUMNS or len(fields) != len(COLUMNS[table]):
        raise ValueError("not a MAC'd row")
    out = bytearray(_DOMAIN)
    _length_prefixed(out, table.encode())
    for value in fields:
        if value is None:
            out += b"N"
        elif isinstance(value, int):  # a bool too: SQLite gives 0 and 1 back
            try:
                out += b"I" + int(value).to_bytes(8, "big", signed=True)
            except OverflowError:
                raise ValueError("integer beyond 64 bits") from None
        elif isinstance(value, str):
            out += b"S"
            _length_prefixed(out, value.encode("utf-8"))
        elif isinstance(value, bytes | bytearray | memoryview):
            out += b"B"
            _length_prefixed(out, bytes(value))
        else:
            raise TypeError(f"a {type(value).__name__} in a MAC'd row")
    return bytes(out)


class RowMacs:
    """Make and check row MACs with the KEKs of one key ring."""

    def __init__(self, ring: KeyRing) -> None:
        self._ring = ring
        self._by_tag = {kid_tag(kid): kid for kid in ring.keys}
        self._keys: dict[str, bytes] = {}

    @property
    def ring(self) -> KeyRing:
        return self._ring

    @property
    def active_id(self) -> str:
        return self._ring.active_id

    def _key(self, kid: str) -> bytes:
        key = self._keys.get(kid)
        if key is None:
            key = self._keys[kid] = self._ring.derived(kid, LABEL)
        return key

    def _digest(self, kid: str, table: str, fields: Sequence[object]) -> bytes:
        return hmac.new(self._key(kid), encode(table, fields), hashlib.sha256).digest()

    def mac(self, table: str, fields: Sequence[object]) -> bytes:
        """The MAC of a row under the active KEK (its tag, then the HMAC)."""
        kid = self._ring.active_id
        return kid_tag(kid) + self._digest(kid, table, fields)

    def kid_of(self, mac: object) -> str | None:
        """The KEK id a well-formed MAC was made under, if that KEK is loaded."""
        if not isinstance(mac, bytes) or len(mac) != MAC_BYTES:
            return None
        return self._by_tag.get(mac[:TAG_BYTES])

    def check(self, table: str, fields: Sequence[object], mac: object) -> Verdict:
        """Whether ``mac`` is the MAC of this row.  Never raises on garbage: a value of a
        type no chatd row holds is a mismatch."""
        if mac is None:
            return Verdict.MISSING
        if not isinstance(mac, bytes) or len(mac) != MAC_BYTES:
            return Verdict.MALFORMED
        kid = self._by_tag.get(mac[:TAG_BYTES])
        if kid is None:
            return Verdict.UNKNOWN_KEY
        try:
            expected = self._digest(kid, table, fields)
        except (TypeError, ValueError):
            return Verdict.MISMATCH
        if hmac.compare_digest(expected, mac[TAG_BYTES:]):
            return Verdict.OK
        return Verdict.MISMATCH
