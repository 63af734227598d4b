"""Streaming chunked AEAD: round trips, ranges, and every kind of damage fails loudly."""

from __future__ import annotations

import io
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chatd.core.errors import IntegrityError
from chatd.crypto.chunks import (
    CHUNK_OVERHEAD,
    HEADER_BYTES,
    ChunkHeader,
    ChunkOpener,
    ChunkSealer,
    _ChunkAead,
    seal_bytes,
)
from chatd.crypto.envelope import new_data_key

KEY = new_data_key()
OTHER_KEY = new_data_key()
ID = 0x1234_5678_9ABC_DEF0
OTHER_ID = ID + 1

data_st = st.binary(max_size=600)
size_st = st.integers(min_value=1, max_value=48)
PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def opener(sealed: bytes, *, key: bytes = KEY, aid: int = ID) -> ChunkOpener:
    return ChunkOpener(io.BytesIO(sealed), key, aid)


def read_all(sealed: bytes, *, key: bytes = KEY, aid: int = ID) -> bytes:
    return b"".join(opener(sealed, key=key, aid=aid).chunks())


def chunk_spans(sealed: bytes, chunk_size: int) -> list[tuple[int, int]]:
    full = chunk_size + CHUNK_OVERHEAD
    spans, pos = [], HEADER_BYTES
    while pos < len(sealed):
        spans.append((pos, min(pos + full, len(sealed))))
        pos += full
    return spans


# ----------------------------------------------------------------------------- round trips


@PROPERTY
@given(data=data_st, chunk_size=size_st)
def test_any_data_any_chunk_size_round_trips(data: bytes, chunk_size: int) -> None:
    sealed = seal_bytes(KEY, ID, data, chunk_size=chunk_size)
    op = opener(sealed)
    assert op.size == len(data)
    assert b"".join(op.chunks()) == data
    assert op.first_bad_chunk() is None
    expected_chunks = max(1, -(-len(data) // chunk_size))
    assert op.chunk_count == expected_chunks


@PROPERTY
@given(pieces=st.lists(st.binary(max_size=90), max_size=12), chunk_size=size_st)
def test_feeding_in_pieces_equals_feeding_at_once(pieces: list[bytes], chunk_size: int) -> None:
    sealer = ChunkSealer(KEY, ID, chunk_size=chunk_size)
    out = b"".join(sealer.update(p) for p in pieces) + sealer.finish()
    data = b"".join(pieces)
    assert read_all(out) == data
    assert len(out) == len(seal_bytes(KEY, ID, data, chunk_size=chunk_size))
    assert sealer.plaintext_size == len(data)


@PROPERTY
@given(
    data=data_st,
    chunk_size=size_st,
    bounds=st.tuples(st.integers(-5, 650), st.integers(-5, 650)),
)
def test_range_reads_equal_slices(data: bytes, chunk_size: int, bounds: tuple[int, int]) -> None:
    start, stop = bounds
    sealed = seal_bytes(KEY, ID, data, chunk_size=chunk_size)
    got = b"".join(opener(sealed).read_range(start, stop))
    assert got == data[max(0, start) : max(0, stop)]


def test_empty_attachment_is_one_empty_last_chunk() -> None:
    sealed = seal_bytes(KEY, ID, b"", chunk_size=16)
    assert len(sealed) == HEADER_BYTES + CHUNK_OVERHEAD
    op = opener(sealed)
    assert (op.chunk_count, op.size, list(op.chunks())) == (1, 0, [b""])


def test_exact_multiple_has_no_empty_tail_but_one_is_accepted() -> None:
    data = bytes(range(64))
    sealed = seal_bytes(KEY, ID, data, chunk_size=16)
    assert opener(sealed).chunk_count == 4
    # A writer that could not look ahead ends with an empty last chunk: also valid.
    header = ChunkHeader(1, 16)
    aead = _ChunkAead(KEY, ID, header)
    full = [aead.seal(i, False, data[i * 16 : i * 16 + 16]) for i in range(4)]
    alt = header.pack() + b"".join(full)
    alt += aead.seal(4, True, b"")
    assert read_all(alt) == data and opener(alt).chunk_count == 5


def test_header_records_key_version_and_chunk_size() -> None:
    sealed = seal_bytes(KEY, ID, b"abc", key_version=7, chunk_size=1000)
    assert sealed[:4] == b"CHTA"
    assert ChunkHeader.parse(sealed) == ChunkHeader(7, 1000)
    with pytest.raises(IntegrityError, match="key version 7, not 1"):
        ChunkOpener(io.BytesIO(sealed), KEY, ID, key_version=1)


def test_range_read_seeks_past_a_damaged_chunk() -> None:
    """Only the chunks holding the range are opened: chunk 1 is damaged, chunk 3 still reads."""
    data = bytes(range(256)) * 2
    sealed = bytearray(seal_bytes(KEY, ID, data, chunk_size=64))
    start, _end = chunk_spans(bytes(sealed), 64)[1]
    sealed[start + 20] ^= 1
    op = opener(bytes(sealed))
    assert b"".join(op.read_range(3 * 64 + 5, 3 * 64 + 40)) == data[3 * 64 + 5 : 3 * 64 + 40]
    with pytest.raises(IntegrityError, match="Chunk 1"):
        b"".join(op.read_range(60, 70))


# ----------------------------------------------------------------------------- damage


@PROPERTY
@given(data=data_st, chunk_size=size_st, where=st.integers(min_value=0), bit=st.integers(0, 7))
def test_any_single_bit_flip_fails(data: bytes, chunk_size: int, where: int, bit: int) -> None:
    sealed = bytearray(seal_bytes(KEY, ID, data, chunk_size=chunk_size))
    sealed[where % len(sealed)] ^= 1 << bit
    with pytest.raises(IntegrityError):
        read_all(bytes(sealed))


@PROPERTY
@given(data=st.binary(min_size=1, max_size=600), chunk_size=size_st, cut=st.integers(min_value=1))
def test_any_truncation_fails(data: bytes, chunk_size: int, cut: int) -> None:
    sealed = seal_bytes(KEY, ID, data, chunk_size=chunk_size)
    keep = len(sealed) - 1 - cut % len(sealed)  # 0 … len-1 bytes kept
    with pytest.raises(IntegrityError):
        op = opener(sealed[:keep])
        b"".join(op.chunks())


@PROPERTY
@given(data=st.binary(min_size=50, max_size=600), chunk_size=size_st, which=st.integers(0))
def test_truncation_at_a_chunk_boundary_is_named(data: bytes, chunk_size: int, which: int) -> None:
    sealed = seal_bytes(KEY, ID, data, chunk_size=chunk_size)
    spans = chunk_spans(sealed, chunk_size)
    assert len(spans) >= 2
    keep_chunks = 1 + which % (len(spans) - 1)  # drop at least the last chunk
    cut = sealed[: spans[keep_chunks - 1][1]]
    op = opener(cut)
    assert op.first_bad_chunk() == keep_chunks  # the first missing one
    with pytest.raises(IntegrityError, match="truncated"):
        b"".join(op.chunks())


@PROPERTY
@given(
    data=st.binary(min_size=100, max_size=600),
    chunk_size=size_st,
    pair=st.tuples(st.integers(0), st.integers(0)),
)
def test_swapping_two_chunks_fails(data: bytes, chunk_size: int, pair: tuple[int, int]) -> None:
    sealed = seal_bytes(KEY, ID, data, chunk_size=chunk_size)
    spans = chunk_spans(sealed, chunk_size)
    full = [s for s in spans if s[1] - s[0] == chunk_size + CHUNK_OVERHEAD]
    assert len(full) >= 2
    first = pair[0] % len(full)
    second = (first + 1 + pair[1] % (len(full) - 1)) % len(full)
    i, j = sorted((first, second))
    a, b = full[i], full[j]
    swapped = (
        sealed[: a[0]]
        + sealed[b[0] : b[1]]
        + sealed[a[1] : b[0]]
        + sealed[a[0] : a[1]]
        + sealed[b[1] :]
    )
    assert len(swapped) == len(sealed) and swapped != sealed
    op = opener(swapped)
    assert op.first_bad_chunk() == i
    with pytest.raises(IntegrityError):
        b"".join(op.chunks())


@PROPERTY
@given(data=st.binary(min_size=1, max_size=600), chunk_size=size_st, which=st.integers(0))
def test_chunk_spliced_from_another_attachment_fails(
    data: bytes, chunk_size: int, which: int
) -> None:
    """Same key, same position, same length — only the attachment id differs."""
    mine = seal_bytes(KEY, ID, data, chunk_size=chunk_size)
    theirs = seal_bytes(KEY, OTHER_ID, data, chunk_size=chunk_size)
    spans = chunk_spans(mine, chunk_size)
    index = which % len(spans)
    lo, hi = spans[index]
    spliced = mine[:lo] + theirs[lo:hi] + mine[hi:]
    op = opener(spliced)
    assert op.first_bad_chunk() == index
    with pytest.raises(IntegrityError):
        b"".join(op.chunks())


def test_whole_file_under_another_id_or_key_fails() -> None:
    sealed = seal_bytes(KEY, ID, b"x" * 100, chunk_size=32)
    with pytest.raises(IntegrityError, match=f"Chunk 0 of attachment {OTHER_ID}"):
        read_all(sealed, aid=OTHER_ID)
    with pytest.raises(IntegrityError):
        read_all(sealed, key=OTHER_KEY)


@pytest.mark.parametrize(
    ("field", "value"),
    [(4, 2), (5, 9), (9, 33)],  # format byte, key version, chunk size
)
def test_edited_header_fails(field: int, value: int) -> None:
    sealed = bytearray(seal_bytes(KEY, ID, b"y" * 100, chunk_size=32))
    if field == 4:
        sealed[4] = value
    else:
        struct.pack_into(">I", sealed, field, value)
    with pytest.raises(IntegrityError):
        read_all(bytes(sealed))


def test_truncated_inside_a_chunk_names_it() -> None:
    sealed = seal_bytes(KEY, ID, b"z" * 100, chunk_size=32)
    spans = chunk_spans(sealed, 32)
    with pytest.raises(IntegrityError, match="inside chunk 2") as err:
        opener(sealed[: spans[2][0] + 10])
    assert err.value.details["chunk"] == 2
    with pytest.raises(IntegrityError, match="header"):
        opener(sealed[:5])


def test_sealer_refuses_use_after_finish() -> None:
    sealer = ChunkSealer(KEY, ID, chunk_size=8)
    sealer.finish()
    with pytest.raises(RuntimeError):
        sealer.update(b"more")
    with pytest.raises(ValueError):
        ChunkSealer(KEY, -1)
    with pytest.raises(ValueError):
        ChunkSealer(KEY, ID, chunk_size=0)
