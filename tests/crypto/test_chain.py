"""The per-conversation hash chain."""

from __future__ import annotations

import hashlib

from chatd.crypto.chain import GENESIS, link_hash

BASE = (GENESIS, 1, 1, "message", b"ciphertext")


def test_genesis_is_32_zero_bytes() -> None:
    assert bytes(32) == GENESIS


def test_link_hash_is_a_deterministic_sha256() -> None:
    digest = link_hash(*BASE)
    assert len(digest) == 32
    assert digest == link_hash(*BASE)
    assert digest != hashlib.sha256(b"".join([GENESIS, b"ciphertext"])).digest()


def test_link_hash_changes_with_every_input() -> None:
    base = link_hash(*BASE)
    variants = [
        (b"\x01" + GENESIS[1:], 1, 1, "message", b"ciphertext"),  # prev_hash
        (GENESIS, 2, 1, "message", b"ciphertext"),  # conversation
        (GENESIS, 1, 2, "message", b"ciphertext"),  # seq
        (GENESIS, 1, 1, "joined", b"ciphertext"),  # kind
        (GENESIS, 1, 1, "message", b"ciphertexT"),  # ciphertext
        (GENESIS, 1, 1, "message", b"ciphertext\x00"),  # one more byte
    ]
    digests = {link_hash(*v) for v in variants}
    assert base not in digests
    assert len(digests) == len(variants)


def test_fields_cannot_slide_into_each_other() -> None:
    # The kind is length-prefixed: moving bytes between kind and ciphertext changes the hash.
    assert link_hash(GENESIS, 1, 1, "ab", b"c") != link_hash(GENESIS, 1, 1, "a", b"bc")
    # Fixed-width integers: (conv 1, seq 23) and (conv 12, seq 3) differ.
    assert link_hash(GENESIS, 1, 23, "m", b"") != link_hash(GENESIS, 12, 3, "m", b"")


def test_a_chain_detects_a_changed_link() -> None:
    cts = [b"a", b"b", b"c", b"d"]
    chain, prev = [], GENESIS
    for seq, ct in enumerate(cts, 1):
        prev = link_hash(prev, 7, seq, "message", ct)
        chain.append(prev)
    altered, prev = [], GENESIS
    for seq, ct in enumerate([b"a", b"X", b"c", b"d"], 1):
        prev = link_hash(prev, 7, seq, "message", ct)
        altered.append(prev)
    assert altered[0] == chain[0]
    assert all(x != y for x, y in zip(altered[1:], chain[1:], strict=True))
