"""ZIP records anywhere in a PDF: a hidden archive is refused wherever it is, and chance
occurrences of a signature in compressed data are not (chatd/attachments/zip_records.py)."""

from __future__ import annotations

import io
import random
import zipfile

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chatd.attachments.kinds import FileKind
from chatd.attachments.sniff import classify
from chatd.attachments.zip_records import SIGNATURE, first_zip_record, plausible
from chatd.core.errors import UnsupportedFileType
from tests.attachments import samples


@pytest.mark.parametrize("before_end", [65 * 1024, 66 * 1024, 2 * 1024 * 1024])
def test_a_zip_hidden_before_the_last_64_kib_is_refused(before_end: int) -> None:
    data = samples.pdf_hiding_zip(before_end)
    assert not zipfile.is_zipfile(io.BytesIO(data))  # out of zipfile's reach
    with pytest.raises(UnsupportedFileType) as refused:
        classify(data)
    assert refused.value.details["reason"] == "polyglot"


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 3), st.binary(max_size=3000), st.binary(max_size=3000))
def test_any_record_of_a_real_zip_anywhere_is_found(cut: int, before: bytes, after: bytes) -> None:
    archive = samples.small_zip()
    # One kind of record only (local header, central directory, end), the others broken.
    records = [m.start() for m in SIGNATURE.finditer(archive)]
    keep = records[min(cut, len(records) - 1)]
    broken = bytearray(archive)
    for at in records:
        if at != keep:
            broken[at : at + 2] = b"pk"
    data = before + bytes(broken) + after
    found = first_zip_record(io.BytesIO(data))
    assert found is not None and found <= len(before) + keep


def test_chance_signatures_in_random_data_are_rarely_records() -> None:
    """A signature occurs by chance about 1.2e-3 times per MiB of compressed data; what
    follows it is then random: 20,000 such signatures, of every kind, give about 0.7 plausible
    records (local and central headers: a version ≤ 63 and one of 22 methods, ~8e-5 each;
    the others far fewer), so refusing only plausible records refuses about 4e-7 of 10 MiB
    PDFs for nothing."""
    rng = random.Random(12)
    kinds = [b"PK\x03\x04", b"PK\x01\x02", b"PK\x05\x06", b"PK\x06\x06", b"PK\x06\x07"]
    chance = [rng.choice(kinds) + rng.randbytes(60) for _ in range(20_000)]
    assert sum(plausible(record) for record in chance) <= 5
    noise = rng.randbytes(8 * 1024 * 1024)  # like 8 MiB of deflate output
    assert first_zip_record(io.BytesIO(noise)) is None


def test_pdfs_with_chance_signatures_pass() -> None:
    # Kept over 64 KiB from the end: there zipfile.is_zipfile, which the server also asks,
    # takes any end signature for an archive.
    stream = b"PK\x03\x04" + b"\xff" * 40 + b"PK\x05\x06\x07\x00\x03\x00" + b"\xff" * 30
    stream += b"\n" + b"%" * 70_000
    assert classify(samples.pdf_document(stream=stream)) is FileKind.PDF
    assert classify(samples.pdf_from_pillow()) is FileKind.PDF
    with open("docs/samples/ordonnance-exemple.pdf", "rb") as sample:
        assert classify(sample.read()) is FileKind.PDF


def test_a_signature_across_two_read_chunks_is_found(monkeypatch: pytest.MonkeyPatch) -> None:
    from chatd.attachments import zip_records

    monkeypatch.setattr(zip_records, "SCAN_CHUNK", 7)
    archive = samples.small_zip()
    for shift in range(8):
        assert first_zip_record(io.BytesIO(b"x" * shift + archive)) == shift
