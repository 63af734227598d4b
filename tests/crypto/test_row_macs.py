"""Row MACs (chatd.crypto.row_macs): any change of a covered field breaks the MAC, the MAC of
the unchanged row verifies, a MAC fits neither another row nor another table, and garbage is
a verdict, never an exception."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from chatd.crypto.keyring import KeyRing
from chatd.crypto.row_macs import (
    AUTH_TOKENS,
    COLUMNS,
    MAC_BYTES,
    MEMBERSHIPS,
    USERS,
    RowMacs,
    Verdict,
    kid_tag,
)

RING = KeyRing.generate()
MACS = RowMacs(RING)

values = st.one_of(
    st.none(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.text(max_size=20),
    st.binary(max_size=20),
)


@st.composite
def rows(draw: st.DrawFn) -> tuple[str, list[Any]]:
    table = draw(st.sampled_from(sorted(COLUMNS)))
    return table, [draw(values) for _ in COLUMNS[table]]


@given(rows(), st.data())
def test_changing_any_covered_field_breaks_the_mac(
    row: tuple[str, list[Any]], data: st.DataObject
) -> None:
    table, fields = row
    mac = MACS.mac(table, fields)
    assert len(mac) == MAC_BYTES and mac[:4] == kid_tag(RING.active_id)
    assert MACS.check(table, fields, mac) is Verdict.OK
    assert RowMacs(RING).check(table, list(fields), mac) is Verdict.OK  # a fresh instance
    index = data.draw(st.integers(0, len(fields) - 1))
    changed = list(fields)
    changed[index] = data.draw(
        values.filter(lambda v: type(v) is not type(fields[index]) or v != fields[index])
    )
    assert MACS.check(table, changed, mac) is Verdict.MISMATCH


@given(rows())
def test_a_mac_fits_no_other_table(row: tuple[str, list[Any]]) -> None:
    table, fields = row
    mac = MACS.mac(table, fields)
    for other in COLUMNS:
        if other != table and len(COLUMNS[other]) == len(fields):
            assert MACS.check(other, fields, mac) is Verdict.MISMATCH


def test_integers_text_and_blobs_are_told_apart() -> None:
    mac = MACS.mac(MEMBERSHIPS, (1, 2, 3, None))
    assert MACS.check(MEMBERSHIPS, (1, 2, 3, None), mac) is Verdict.OK
    assert MACS.check(MEMBERSHIPS, ("1", 2, 3, None), mac) is Verdict.MISMATCH
    assert MACS.check(MEMBERSHIPS, (b"\x01", 2, 3, None), mac) is Verdict.MISMATCH
    assert MACS.check(MEMBERSHIPS, (1, 2, 3, 0), mac) is Verdict.MISMATCH
    # A copied MAC: the same interval of another user.
    assert MACS.check(MEMBERSHIPS, (1, 3, 3, None), mac) is Verdict.MISMATCH


@given(st.one_of(st.binary(max_size=80), st.text(max_size=40), st.integers(), st.floats()))
def test_garbage_is_a_verdict(mac: object) -> None:
    fields = (b"h" * 32, 1, 10, 20, None)
    assert MACS.check(AUTH_TOKENS, fields, mac) is not Verdict.OK


def test_verdicts_of_a_missing_malformed_and_foreign_mac() -> None:
    fields = (7, "alice", "$argon2id$…", 0, 0)
    good = MACS.mac(USERS, fields)
    assert MACS.check(USERS, fields, None) is Verdict.MISSING
    assert MACS.check(USERS, fields, good[:-1]) is Verdict.MALFORMED
    assert MACS.check(USERS, fields, good.hex()) is Verdict.MALFORMED
    foreign = RowMacs(KeyRing.generate()).mac(USERS, fields)
    assert MACS.check(USERS, fields, foreign) is Verdict.UNKNOWN_KEY
    # Values no chatd row holds are a mismatch, not a crash.
    assert MACS.check(USERS, (7, "alice", 1.5, 0, 0), good) is Verdict.MISMATCH
    assert MACS.check(USERS, (2**70, "alice", "h", 0, 0), good) is Verdict.MISMATCH
    assert MACS.check(USERS, (7, "\udc80", "h", 0, 0), good) is Verdict.MISMATCH


def test_rotation_keeps_old_macs_checkable_and_makes_new_ones_under_the_new_key() -> None:
    fields = (3, "bob", "hash", 1, 0)
    old = MACS.mac(USERS, fields)
    rotated = RowMacs(RING.with_new_active())
    assert rotated.check(USERS, fields, old) is Verdict.OK
    assert rotated.kid_of(old) == RING.active_id
    new = rotated.mac(USERS, fields)
    assert rotated.kid_of(new) == rotated.active_id != RING.active_id
    retired = RowMacs(rotated.ring.without(RING.active_id))
    assert retired.check(USERS, fields, new) is Verdict.OK
    assert retired.check(USERS, fields, old) is Verdict.UNKNOWN_KEY


def test_a_key_id_that_is_not_hexadecimal_still_gets_a_tag() -> None:
    ring = KeyRing(active_id="hand-made", keys={"hand-made": b"k" * 32})
    macs = RowMacs(ring)
    mac = macs.mac(USERS, (1, "a", "h", 0, 0))
    assert len(kid_tag("hand-made")) == 4 and macs.kid_of(mac) == "hand-made"
    assert macs.check(USERS, (1, "a", "h", 0, 0), mac) is Verdict.OK
