"""One upload end to end: spool under a size limit, classify, clean, name, seal, read back."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from PIL import Image

from chatd.attachments.blobstore import BlobStore
from chatd.attachments.ingest import ingest, sanitise_file_name
from chatd.attachments.kinds import FileKind
from chatd.attachments.spool import spool_limited
from chatd.core.errors import AttachmentTooLarge, ImageTooLarge, UnsupportedFileType
from chatd.crypto.attachment_keys import (
    new_attachment_id,
    new_attachment_key,
    open_file_name,
    seal_file_name,
)
from chatd.crypto.keyring import KeyRing
from tests.attachments import samples
from tests.attachments.ole2_builder import excel_workbook, word_document

MiB = 1024 * 1024


def spooled(tmp_path: Path, data: bytes, name: str = "upload") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    ("make", "sent_as", "kind", "stored_name"),
    [
        (samples.pdf_document, "Compte rendu.docx", FileKind.PDF, "Compte rendu.pdf"),
        (samples.docx, "scan.jpg", FileKind.DOCX, "scan.docx"),
        (samples.xlsx, "résultats labo.xls", FileKind.XLSX, "résultats labo.xlsx"),
        (word_document, "courrier.DOC", FileKind.DOC, "courrier.doc"),
        (excel_workbook, "tableau", FileKind.XLS, "tableau.xls"),
    ],
)
def test_documents_are_stored_as_sent(
    tmp_path: Path, make: Callable[[], bytes], sent_as: str, kind: FileKind, stored_name: str
) -> None:
    data = make()
    path = spooled(tmp_path, data)
    result = ingest(path, sent_as)
    assert (result.kind, result.source_kind, result.mime) == (kind, kind, kind.mime)
    assert (result.name, result.size, result.content) == (stored_name, len(data), path)
    assert (result.thumbnail, result.width, result.height) == (None, None, None)


@pytest.mark.parametrize(
    ("make", "sent_as", "source", "stored", "stored_name"),
    [
        (samples.jpeg_with_gps, "photo plaie.pdf", FileKind.JPEG, FileKind.JPEG, "photo plaie.jpg"),
        (samples.png_with_metadata, "ecg.PNG", FileKind.PNG, FileKind.PNG, "ecg.png"),
        (samples.gif, "schema.gif", FileKind.GIF, FileKind.GIF, "schema.gif"),
        (samples.webp, "radio.webp", FileKind.WEBP, FileKind.WEBP, "radio.webp"),
        (samples.heic, "IMG_0001.HEIC", FileKind.HEIC, FileKind.JPEG, "IMG_0001.jpg"),
    ],
)
def test_images_are_stored_re_encoded_with_a_thumbnail(
    tmp_path: Path,
    make: Callable[[], bytes],
    sent_as: str,
    source: FileKind,
    stored: FileKind,
    stored_name: str,
) -> None:
    original = make()
    result = ingest(spooled(tmp_path, original), sent_as)
    assert (result.source_kind, result.kind, result.mime) == (source, stored, stored.mime)
    assert result.name == stored_name
    assert isinstance(result.content, bytes) and result.content != original
    assert result.size == len(result.content)
    assert samples.SECRET not in result.content
    img = Image.open(io.BytesIO(result.content))
    assert img.size == (result.width, result.height)
    assert result.thumbnail is not None
    assert Image.open(io.BytesIO(result.thumbnail)).format == "JPEG"


def test_html_renamed_pdf_and_svg_are_refused(tmp_path: Path) -> None:
    for data, name in [(samples.HTML, "résultats.pdf"), (samples.SVG, "logo.svg")]:
        with pytest.raises(UnsupportedFileType) as err:
            ingest(spooled(tmp_path, data, name), name)
        assert err.value.code == "unsupported_file_type"


def test_pixel_flood_is_refused(tmp_path: Path) -> None:
    for width, height in [(100_000, 100_000), (8_000, 8_000)]:
        with pytest.raises(ImageTooLarge):
            ingest(spooled(tmp_path, samples.png_declaring(width, height)), "flood.png")


def test_ingest_rechecks_the_size(tmp_path: Path) -> None:
    path = spooled(tmp_path, samples.pdf_document())
    with pytest.raises(AttachmentTooLarge):
        ingest(path, "a.pdf", max_bytes=100)


@pytest.mark.parametrize(
    ("sent", "expected"),
    [
        ("../../etc/passwd.pdf", "passwd.pdf"),
        ("C:\\Users\\dr\\Desktop\\lettre.pdf", "lettre.pdf"),
        ("facture\u202efdp.exe", "facturefdp.exe.pdf"),  # right-to-left override dropped
        ("a\x00b\x1fc\td.pdf", "abc d.pdf"),
        ('r<e>p:o"r|t?*.pdf', "report.pdf"),
        ("  ..hidden.  ", "hidden.pdf"),
        ("", "attachment.pdf"),
        (".pdf", "pdf.pdf"),
        ("...", "attachment.pdf"),
        ("CON.pdf", "_CON.pdf"),
        ("bilan.v2.final", "bilan.v2.final.pdf"),
        ("e\u0301te\u0301.PDF", "\u00e9t\u00e9.pdf"),  # NFC
    ],
)
def test_file_name_sanitising(sent: str, expected: str) -> None:
    assert sanitise_file_name(sent, FileKind.PDF) == expected


def test_long_names_are_cut_to_200_characters_keeping_the_extension() -> None:
    name = sanitise_file_name("é" * 500 + ".docx", FileKind.DOCX)
    assert len(name) == 200 and name.endswith("é.docx")


# ----------------------------------------------------------------------------- spooling


class Body:
    """An upload body: ``total`` bytes in ``piece``-sized parts, counting what was read."""

    def __init__(self, total: int, piece: int = 64 * 1024) -> None:
        self.total, self.piece, self.sent = total, piece, 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while self.sent < self.total:
            size = min(self.piece, self.total - self.sent)
            self.sent += size
            yield b"\x5a" * size


async def test_spool_accepts_exactly_the_limit(tmp_path: Path) -> None:
    dest = tmp_path / "up"
    assert await spool_limited(Body(10 * MiB), dest, 10 * MiB) == 10 * MiB
    assert dest.stat().st_size == 10 * MiB and dest.stat().st_mode & 0o777 == 0o600


async def test_spool_refuses_10_mib_plus_one_as_soon_as_it_arrives(tmp_path: Path) -> None:
    dest = tmp_path / "up"
    body = Body(10 * MiB + 1 + 5 * MiB)  # the client would send 5 MiB more
    with pytest.raises(AttachmentTooLarge) as err:
        await spool_limited(body, dest, 10 * MiB)
    assert err.value.code == "attachment_too_large" and "10 MiB" in err.value.message
    assert err.value.details["max_bytes"] == 10 * MiB
    assert body.sent == 10 * MiB + 64 * 1024  # stopped at the piece that crossed the limit
    assert not dest.exists()


async def test_spool_refuses_one_byte_over_in_the_last_piece(tmp_path: Path) -> None:
    dest = tmp_path / "up"
    with pytest.raises(AttachmentTooLarge):
        await spool_limited(Body(1001, piece=1001), dest, 1000)
    assert not dest.exists()


async def test_spool_removes_the_file_when_the_client_goes_away(tmp_path: Path) -> None:
    async def broken() -> AsyncIterator[bytes]:
        yield b"x" * 300_000
        raise ConnectionResetError

    dest = tmp_path / "up"
    with pytest.raises(ConnectionResetError):
        await spool_limited(broken(), dest, 10 * MiB)
    assert not dest.exists()
    dest.write_bytes(b"")
    with pytest.raises(FileExistsError):
        await spool_limited(Body(10), dest, 100)


async def test_upload_end_to_end(tmp_path: Path, ring: KeyRing) -> None:
    """Spool → ingest → seal the file and the name → read back, as integration will do."""
    blobs = BlobStore(tmp_path / "attachments", chunk_size=4096)
    jpeg = samples.jpeg_with_gps()

    async def body() -> AsyncIterator[bytes]:
        for i in range(0, len(jpeg), 100):
            yield jpeg[i : i + 100]

    dest = blobs.spool_path()
    await spool_limited(body(), dest, 10 * MiB)
    result = ingest(dest, "../plaie J+3.jpeg")
    attachment_id = new_attachment_id()
    dek, wrapped = new_attachment_key(ring, attachment_id)
    blob = blobs.write(attachment_id, dek, result.content)
    sealed_name = seal_file_name(dek, attachment_id, result.name)
    dest.unlink()

    assert blob.size == result.size
    assert blobs.read_bytes(attachment_id, dek) == result.content
    assert open_file_name(dek, attachment_id, sealed_name) == "plaie J+3.jpg"
    assert blobs.verify(attachment_id, dek).ok
    assert blobs.sweep_temp_files() == []
    assert wrapped.kek_id == ring.active_id
