"""Argon2id password hashing."""

from __future__ import annotations

import re

import pytest
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

from chatd.crypto.passwords import hash_password, needs_rehash, verify_password

PHC = re.compile(r"^\$argon2id\$v=19\$m=(\d+),t=(\d+),p=(\d+)\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+$")


@pytest.fixture(scope="module")
def stored() -> str:
    return hash_password("correct horse battery staple")


def test_hash_and_verify(stored: str) -> None:
    assert verify_password("correct horse battery staple", stored)
    assert not verify_password("correct horse battery stapl", stored)
    assert not verify_password("Correct horse battery staple", stored)
    assert not verify_password("", stored)


def test_hashes_are_salted(stored: str) -> None:
    other = hash_password("correct horse battery staple")
    assert other != stored
    assert verify_password("correct horse battery staple", other)
    assert "correct horse" not in stored


def test_parameters_meet_the_minimum(stored: str) -> None:
    match = PHC.match(stored)
    assert match, stored
    memory_kib, iterations, lanes = (int(g) for g in match.groups())
    assert memory_kib >= 19 * 1024
    assert iterations >= 2
    assert lanes >= 1


def test_unicode_password() -> None:
    phc = hash_password("mot de passe é ü 密码 🔑")
    assert verify_password("mot de passe é ü 密码 🔑", phc)
    assert not verify_password("mot de passe e u 密码 🔑", phc)


@pytest.mark.parametrize(
    "malformed",
    [
        "",
        "not a hash",
        "$argon2id$v=19$m=19456,t=2,p=1$",
        "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$!!!!",
        "$argon2i$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2g",
        "$2b$12$abcdefghijklmnopqrstuu5UvkWjYqPZ3pYmM/2s7ZsE1qSgBw0W",
        "$argon2id$v=19$m=19456,t=2,p=0$c2FsdHNhbHQ$aGFzaGhhc2g",
        "$argon2id$v=19$m=19456,t=0,p=1$c2FsdHNhbHQ$aGFzaGhhc2g",
        "$argon2id$v=19$m=1,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2g",
        "$argon2id$v=19$m=99999999999999999999,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2g",
        "$argon2id$v=19$m=19456,t=2,p=1$YQ$aGFzaA",
        "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2g$extra",
    ],
)
def test_malformed_hash_is_false_not_an_exception(malformed: str) -> None:
    assert verify_password("anything", malformed) is False


def test_tampered_hash_is_false(stored: str) -> None:
    last = stored[-1]
    tampered = stored[:-1] + ("A" if last != "A" else "B")
    assert verify_password("correct horse battery staple", tampered) is False


def test_needs_rehash(stored: str) -> None:
    assert needs_rehash(stored) is False
    weak = Argon2id(salt=b"0123456789abcdef", length=32, iterations=1, lanes=1, memory_cost=8192)
    weak_phc = weak.derive_phc_encoded(b"pw")
    assert verify_password("pw", weak_phc)  # still accepted…
    assert needs_rehash(weak_phc) is True  # …but to be upgraded at the next login
    fewer_passes = Argon2id(
        salt=b"0123456789abcdef", length=32, iterations=1, lanes=1, memory_cost=19 * 1024
    ).derive_phc_encoded(b"pw")
    assert needs_rehash(fewer_passes) is True
    assert needs_rehash("garbage") is True
