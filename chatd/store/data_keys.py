"""Data keys as the store uses them: created, wrapped, unwrapped once and cached.

The cache holds :class:`~chatd.crypto.envelope.Sealer` objects (an AES-GCM context each) so the
hot path never unwraps a key twice.  Shredding and rotation call :meth:`DataKeys.forget` /
:meth:`DataKeys.replace_ring` so that no stale key outlives its row.
"""

from __future__ import annotations

from chatd.crypto.blind import derive_key
from chatd.crypto.envelope import (
    KeyScope,
    Sealer,
    WrappedKey,
    new_data_key,
    unwrap_data_key,
    wrap_data_key,
)
from chatd.crypto.keyring import KeyRing

CONV_SCOPE = "conv"
DIRECTORY_SCOPE = "directory"
AUDIT_SCOPE = "audit"  # one key (scope id 0, version 1): the admin audit log's chain MAC
EVENTS_DOMAIN = b"ev"
CONV_STATE_DOMAIN = b"cs"
PROFILE_DOMAIN = b"up"


class DataKeys:
    def __init__(self, ring: KeyRing) -> None:
        self._ring = ring
        self._deks: dict[tuple[str, int, int], bytes] = {}
        self._sealers: dict[tuple[str, int, int, bytes, int], Sealer] = {}

    @property
    def ring(self) -> KeyRing:
        return self._ring

    def replace_ring(self, ring: KeyRing) -> None:
        self._ring = ring

    def create(self, scope: KeyScope) -> WrappedKey:
        """A fresh data key for ``scope``, remembered, returned wrapped for storage."""
        dek = new_data_key()
        self._deks[(scope.kind, scope.scope_id, scope.version)] = dek
        return wrap_data_key(self._ring, dek, scope)

    def rewrap(self, wrapped: WrappedKey, scope: KeyScope) -> WrappedKey:
        dek = unwrap_data_key(self._ring, wrapped, scope)
        return wrap_data_key(self._ring, dek, scope)

    def knows(self, kind: str, scope_id: int, version: int) -> bool:
        return (kind, scope_id, version) in self._deks

    def key(self, scope: KeyScope, wrapped: WrappedKey) -> bytes:
        """The data key itself (a MAC key: the admin audit log's chain), unwrapped once."""
        self.load(scope, wrapped)
        return self._deks[(scope.kind, scope.scope_id, scope.version)]

    def load(self, scope: KeyScope, wrapped: WrappedKey) -> None:
        key = (scope.kind, scope.scope_id, scope.version)
        if key not in self._deks:
            self._deks[key] = unwrap_data_key(self._ring, wrapped, scope)

    def derived_key(self, kind: str, scope_id: int, version: int, label: bytes) -> bytes:
        """A key for one purpose (``label``) derived from a loaded data key."""
        return derive_key(self._deks[(kind, scope_id, version)], label)

    def sealer(
        self, kind: str, scope_id: int, version: int, domain: bytes, sealed_scope_id: int
    ) -> Sealer:
        """The sealer of a loaded key; ``sealed_scope_id`` is bound into every AAD."""
        cache_key = (kind, scope_id, version, domain, sealed_scope_id)
        sealer = self._sealers.get(cache_key)
        if sealer is None:
            dek = self._deks[(kind, scope_id, version)]
            sealer = Sealer(dek, version, domain, sealed_scope_id)
            self._sealers[cache_key] = sealer
        return sealer

    def forget(self, kind: str, scope_id: int) -> None:
        for key in [k for k in self._deks if k[0] == kind and k[1] == scope_id]:
            del self._deks[key]
        for skey in [k for k in self._sealers if k[0] == kind and k[1] == scope_id]:
            del self._sealers[skey]
