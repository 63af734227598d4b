"""Sealing of payloads and wrapping of data keys (design §6)."""

from __future__ import annotations

import pytest

from chatd.core.errors import IntegrityError, UnknownKeyError
from chatd.crypto.envelope import (
    SEAL_OVERHEAD,
    KeyScope,
    Sealer,
    WrappedKey,
    new_data_key,
    sealed_key_version,
    unwrap_data_key,
    wrap_data_key,
)
from chatd.crypto.keyring import KeyRing

DOMAIN = b"ev"


@pytest.fixture
def dek() -> bytes:
    return new_data_key()


def test_seal_open_roundtrip(dek: bytes) -> None:
    sealer = Sealer(dek, 1, DOMAIN, 42)
    for plaintext in (b"", b"hello", "Bonjour Élodie ✓".encode(), bytes(range(256)) * 40):
        sealed = sealer.seal(7, "message", plaintext)
        assert len(sealed) == len(plaintext) + SEAL_OVERHEAD
        assert sealer.open(7, "message", sealed) == plaintext
        assert sealed_key_version(sealed) == 1


def test_sealing_is_randomised_and_hides_the_plaintext(dek: bytes) -> None:
    sealer = Sealer(dek, 1, DOMAIN, 42)
    one = sealer.seal(1, "message", b"same text same text")
    two = sealer.seal(1, "message", b"same text same text")
    assert one != two  # random nonce
    assert b"same text" not in one


def test_a_new_sealer_on_the_same_key_opens(dek: bytes) -> None:
    sealed = Sealer(dek, 3, DOMAIN, 42).seal(5, "renamed", b"x")
    assert Sealer(dek, 3, DOMAIN, 42).open(5, "renamed", sealed) == b"x"


@pytest.mark.parametrize(
    ("sealer_args", "seq", "kind"),
    [
        ((1, DOMAIN, 42), 8, "message"),  # another seq
        ((1, DOMAIN, 42), 7, "renamed"),  # another kind
        ((1, DOMAIN, 43), 7, "message"),  # another conversation
        ((1, b"cs", 42), 7, "message"),  # another domain (use of the key)
        ((2, DOMAIN, 42), 7, "message"),  # another key version
    ],
    ids=["seq", "kind", "conversation", "domain", "key-version"],
)
def test_aad_binds_the_ciphertext_to_its_place(
    dek: bytes, sealer_args: tuple[int, bytes, int], seq: int, kind: str
) -> None:
    sealed = Sealer(dek, 1, DOMAIN, 42).seal(7, "message", b"payload")
    with pytest.raises(IntegrityError):
        Sealer(dek, *sealer_args).open(seq, kind, sealed)


def test_relabelled_key_version_does_not_open(dek: bytes) -> None:
    sealed = bytearray(Sealer(dek, 1, DOMAIN, 42).seal(7, "message", b"payload"))
    sealed[4] = 2  # header: format byte, then the version as u32 big-endian
    assert sealed_key_version(bytes(sealed)) == 2
    with pytest.raises(IntegrityError):
        Sealer(dek, 2, DOMAIN, 42).open(7, "message", bytes(sealed))


def test_another_key_does_not_open(dek: bytes) -> None:
    sealed = Sealer(dek, 1, DOMAIN, 42).seal(7, "message", b"payload")
    with pytest.raises(IntegrityError):
        Sealer(new_data_key(), 1, DOMAIN, 42).open(7, "message", sealed)


def test_every_flipped_byte_is_detected(dek: bytes) -> None:
    sealer = Sealer(dek, 1, DOMAIN, 42)
    sealed = sealer.seal(7, "message", b"short payload")
    for i in range(len(sealed)):
        for bit in (0x01, 0x80):
            tampered = bytearray(sealed)
            tampered[i] ^= bit
            with pytest.raises(IntegrityError):
                sealer.open(7, "message", bytes(tampered))


@pytest.mark.parametrize("cut", [1, 16, SEAL_OVERHEAD - 1])
def test_truncated_payload_is_refused(dek: bytes, cut: int) -> None:
    sealer = Sealer(dek, 1, DOMAIN, 42)
    sealed = sealer.seal(7, "message", b"payload to be cut")
    with pytest.raises(IntegrityError):
        sealer.open(7, "message", sealed[:-cut])
    with pytest.raises(IntegrityError):
        sealer.open(7, "message", sealed[:cut])
    with pytest.raises(IntegrityError):
        sealer.open(7, "message", sealed + b"\x00")
    with pytest.raises(IntegrityError):
        sealed_key_version(b"\x01\x00")


# ----------------------------------------------------------------------------- data keys


def test_data_keys_are_fresh_256_bit_keys() -> None:
    keys = {new_data_key() for _ in range(20)}
    assert len(keys) == 20
    assert all(len(k) == 32 for k in keys)


def test_wrap_unwrap_roundtrip(ring: KeyRing, dek: bytes) -> None:
    scope = KeyScope("conv", 42, 1)
    wrapped = wrap_data_key(ring, dek, scope)
    assert wrapped.kek_id == ring.active_id
    assert dek not in wrapped.blob
    assert unwrap_data_key(ring, wrapped, scope) == dek
    assert wrap_data_key(ring, dek, scope).blob != wrapped.blob  # random nonce


@pytest.mark.parametrize(
    "other",
    [KeyScope("conv", 43, 1), KeyScope("conv", 42, 2), KeyScope("directory", 42, 1)],
    ids=["scope-id", "version", "kind"],
)
def test_wrapped_key_is_bound_to_its_scope(ring: KeyRing, dek: bytes, other: KeyScope) -> None:
    wrapped = wrap_data_key(ring, dek, KeyScope("conv", 42, 1))
    with pytest.raises(IntegrityError) as caught:
        unwrap_data_key(ring, wrapped, other)
    assert not isinstance(caught.value, UnknownKeyError)


def test_wrapped_key_is_bound_to_its_kek_id(dek: bytes) -> None:
    # Two ids with the same key bytes: only the id in the AAD tells them apart.
    kek = KeyRing.generate().active_key
    ring = KeyRing(active_id="new", keys={"old": kek, "new": kek})
    scope = KeyScope("conv", 1, 1)
    wrapped = wrap_data_key(ring, dek, scope)
    assert wrapped.kek_id == "new"
    with pytest.raises(IntegrityError):
        unwrap_data_key(ring, WrappedKey("old", wrapped.blob), scope)


def test_tampered_wrapped_key_is_refused(ring: KeyRing, dek: bytes) -> None:
    scope = KeyScope("conv", 1, 1)
    wrapped = wrap_data_key(ring, dek, scope)
    blob = bytearray(wrapped.blob)
    blob[-1] ^= 1
    with pytest.raises(IntegrityError):
        unwrap_data_key(ring, WrappedKey(wrapped.kek_id, bytes(blob)), scope)


def test_unknown_kek_raises_unknown_key_error(ring: KeyRing, dek: bytes) -> None:
    scope = KeyScope("conv", 1, 1)
    wrapped = wrap_data_key(ring, dek, scope)
    other = KeyRing.generate()
    with pytest.raises(UnknownKeyError) as caught:
        unwrap_data_key(other, wrapped, scope)
    assert wrapped.kek_id in caught.value.message
    assert isinstance(caught.value, IntegrityError)
    for secret in (ring.active_key, other.active_key, dek):
        assert secret.hex() not in caught.value.message


def test_rotation_keeps_old_wraps_readable(ring: KeyRing, dek: bytes) -> None:
    scope = KeyScope("conv", 9, 1)
    old = wrap_data_key(ring, dek, scope)
    rotated = ring.with_new_active()
    new = wrap_data_key(rotated, unwrap_data_key(rotated, old, scope), scope)
    assert new.kek_id == rotated.active_id != old.kek_id
    retired = rotated.without(ring.active_id)
    assert unwrap_data_key(retired, new, scope) == dek
    with pytest.raises(UnknownKeyError):
        unwrap_data_key(retired, old, scope)
