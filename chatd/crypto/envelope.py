"""Data keys and the sealing of stored payloads (design §6).

Two layers:

* A **data key** (DEK, 32 random bytes) per conversation (later also per attachment and for
  the user directory) encrypts payloads.  It is stored only *wrapped*: AES-256-GCM under the
  active KEK, with the AAD naming the key's scope, scope id and version and the KEK id, so a
  wrapped key copied onto another conversation's row fails to unwrap.

* A **sealed payload** is::

      0x01 | key_version (u32 BE) | nonce (12 random bytes) | AES-256-GCM(ciphertext ‖ tag)

  with AAD = ``domain ‖ header ‖ scope_id ‖ seq ‖ binding ‖ kind``.  For conversation events
  the scope id is the conversation id, seq the event's seq and the binding the sender and
  time (:func:`event_binding`), so a ciphertext copied to another row or conversation,
  relabelled with another kind, or given another sender or time fails to open.  Random
  96-bit nonces are safe here: a DEK seals one conversation's events, far below the 2**32
  messages-per-key bound.
"""

from __future__ import annotations

import os
import struct
import threading
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from chatd.core.errors import IntegrityError, UnknownKeyError
from chatd.crypto.keyring import KEY_BYTES, KeyRing
from chatd.i18n import N_

SEAL_FORMAT = 1
_HEADER = struct.Struct(">BI")
NONCE_BYTES = 12
SEAL_OVERHEAD = _HEADER.size + NONCE_BYTES + 16
_BODY_AT = _HEADER.size + NONCE_BYTES
_AAD_IDS = struct.Struct(">qq")


@dataclass(frozen=True)
class KeyScope:
    """What a data key protects: e.g. ``KeyScope("conv", 42, 1)``."""

    kind: str
    scope_id: int
    version: int

    def aad(self, kek_id: str) -> bytes:
        return b"chatd/dek/1|%s|%d|%d|%s" % (
            self.kind.encode(),
            self.scope_id,
            self.version,
            kek_id.encode(),
        )


@dataclass(frozen=True)
class WrappedKey:
    kek_id: str
    blob: bytes


class _NoncePool:
    """Random nonces drawn from the OS in blocks: one ``getrandom`` per 1,024 seals instead
    of one each (a measurable share of the append path).  Every nonce is still 96 fresh random
    bits; the pool is emptied in a forked child so that parent and child never share one."""

    BLOCK = NONCE_BYTES * 1024

    def __init__(self) -> None:
        self._buffer = b""
        self._offset = 0
        # Sealing may run in worker threads (attachments): never hand out a nonce twice.
        self._lock = threading.Lock()

    def take(self) -> bytes:
        with self._lock:
            if self._offset >= len(self._buffer):
                self._buffer, self._offset = os.urandom(self.BLOCK), 0
            start = self._offset
            self._offset = start + NONCE_BYTES
            return self._buffer[start : self._offset]

    def clear(self) -> None:
        self._buffer, self._offset = b"", 0
        self._lock = threading.Lock()


_nonces = _NoncePool()
os.register_at_fork(after_in_child=_nonces.clear)


def new_data_key() -> bytes:
    return AESGCM.generate_key(bit_length=KEY_BYTES * 8)


def wrap_data_key(ring: KeyRing, dek: bytes, scope: KeyScope) -> WrappedKey:
    nonce = os.urandom(NONCE_BYTES)
    blob = nonce + AESGCM(ring.active_key).encrypt(nonce, dek, scope.aad(ring.active_id))
    return WrappedKey(ring.active_id, blob)


def unwrap_data_key(ring: KeyRing, wrapped: WrappedKey, scope: KeyScope) -> bytes:
    kek = ring.key(wrapped.kek_id)
    if kek is None:
        raise UnknownKeyError(
            N_("The data key of {scope} is wrapped by key {kek_id}, which is not in the key file."),
            scope=f"{scope.kind} {scope.scope_id}",
            kek_id=wrapped.kek_id,
        )
    nonce, body = wrapped.blob[:NONCE_BYTES], wrapped.blob[NONCE_BYTES:]
    try:
        dek = AESGCM(kek).decrypt(nonce, body, scope.aad(wrapped.kek_id))
    except InvalidTag:
        raise IntegrityError(
            N_("The data key of {scope} does not unwrap (tampered, or moved from another row)."),
            scope=f"{scope.kind} {scope.scope_id}",
        ) from None
    if len(dek) != KEY_BYTES:
        raise IntegrityError(
            N_("The data key of {scope} has a bad length."), scope=f"{scope.kind} {scope.scope_id}"
        )
    return dek


class Sealer:
    """Seals and opens payloads under one data key, for one domain and scope id.

    ``domain`` separates uses of the same key (``b"ev"`` conversation events, ``b"cs"``
    materialised conversation state, ``b"up"`` user profiles).
    """

    __slots__ = ("_aad_prefix", "_aead", "_header", "domain", "key_version", "scope_id")

    def __init__(self, dek: bytes, key_version: int, domain: bytes, scope_id: int) -> None:
        self._aead = AESGCM(dek)
        self.key_version = key_version
        self.domain = domain
        self.scope_id = scope_id
        self._header = _HEADER.pack(SEAL_FORMAT, key_version)
        self._aad_prefix = domain + b"|" + self._header

    def _aad(self, seq: int, kind: str, binding: bytes) -> bytes:
        return b"".join(
            (self._aad_prefix, _AAD_IDS.pack(self.scope_id, seq), binding, kind.encode())
        )

    def seal(self, seq: int, kind: str, plaintext: bytes, binding: bytes = b"") -> bytes:
        """Seal ``plaintext`` for row ``seq`` of kind ``kind``; ``binding`` is further clear
        metadata of the row (fixed width) that must not be changed without detection."""
        nonce = _nonces.take()
        aad = self._aad(seq, kind, binding)
        return self._header + nonce + self._aead.encrypt(nonce, plaintext, aad)

    def open(self, seq: int, kind: str, sealed: bytes, binding: bytes = b"") -> bytes:
        if len(sealed) < SEAL_OVERHEAD:
            raise IntegrityError(N_("Sealed payload {where} is truncated."), where=self._where(seq))
        if sealed[: _HEADER.size] != self._header:
            raise IntegrityError(
                N_("Sealed payload {where} has an unexpected header."), where=self._where(seq)
            )
        try:
            return self._aead.decrypt(
                sealed[_HEADER.size : _BODY_AT], sealed[_BODY_AT:], self._aad(seq, kind, binding)
            )
        except InvalidTag:
            raise IntegrityError(
                N_("Sealed payload {where} does not open (tampered, or moved from another row)."),
                where=self._where(seq),
            ) from None

    def _where(self, seq: int) -> str:
        return f"{self.domain.decode()} {self.scope_id}/{seq}"


_BINDING = struct.Struct(">qq")


def event_binding(sender: int, ts: int) -> bytes:
    """The clear metadata of an event row bound into its seal: who sent it, and when."""
    return _BINDING.pack(sender, ts)


def sealed_key_version(sealed: bytes) -> int:
    """The data-key version named in a sealed payload's header."""
    if len(sealed) < _HEADER.size:
        raise IntegrityError(N_("Sealed payload is truncated."))
    return int(_HEADER.unpack_from(sealed)[1])
