"""Per-attachment data keys and sealed file names are bound to their attachment."""

from __future__ import annotations

import pytest

from chatd.core.errors import IntegrityError
from chatd.crypto.attachment_keys import (
    new_attachment_id,
    new_attachment_key,
    open_file_name,
    seal_file_name,
    unwrap_attachment_key,
)
from chatd.crypto.envelope import KeyScope, unwrap_data_key
from chatd.crypto.keyring import KeyRing


def test_ids_are_random_and_fit_63_bits() -> None:
    ids = {new_attachment_id() for _ in range(200)}
    assert len(ids) == 200
    assert all(0 < i < 2**63 for i in ids)


def test_wrapped_key_unwraps_only_for_its_attachment(ring: KeyRing) -> None:
    dek, wrapped = new_attachment_key(ring, 41)
    assert unwrap_attachment_key(ring, wrapped, 41) == dek
    assert unwrap_data_key(ring, wrapped, KeyScope("attachment", 41, 1)) == dek
    with pytest.raises(IntegrityError):
        unwrap_attachment_key(ring, wrapped, 42)
    with pytest.raises(IntegrityError):
        unwrap_data_key(ring, wrapped, KeyScope("conv", 41, 1))


def test_file_names_are_sealed_and_bound_to_the_attachment(ring: KeyRing) -> None:
    dek, _ = new_attachment_key(ring, 7)
    name = "Compte rendu — Mme Hélène Dupont.pdf"
    sealed = seal_file_name(dek, 7, name)
    assert name.encode() not in sealed and b"Dupont" not in sealed
    assert seal_file_name(dek, 7, name) != sealed  # fresh nonce each time
    assert open_file_name(dek, 7, sealed) == name
    with pytest.raises(IntegrityError):
        open_file_name(dek, 8, sealed)
    other, _ = new_attachment_key(ring, 7)
    with pytest.raises(IntegrityError):
        open_file_name(other, 7, sealed)
