"""classify(): the type comes from the content, and everything not accepted is refused."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from chatd.attachments.kinds import FileKind
from chatd.attachments.sniff import classify, image_kind
from chatd.core.errors import CorruptFile, ImageTooLarge, UnsupportedFileType
from tests.attachments import samples
from tests.attachments.ole2_builder import excel_workbook, word_document

ACCEPTED: list[tuple[str, Callable[[], bytes], FileKind, str, str]] = [
    ("pdf", samples.pdf_document, FileKind.PDF, "application/pdf", "pdf"),
    ("pdf-pillow", samples.pdf_from_pillow, FileKind.PDF, "application/pdf", "pdf"),
    (
        "docx",
        samples.docx,
        FileKind.DOCX,
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "docx",
    ),
    (
        "xlsx",
        samples.xlsx,
        FileKind.XLSX,
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "xlsx",
    ),
    ("doc", word_document, FileKind.DOC, "application/msword", "doc"),
    ("xls", excel_workbook, FileKind.XLS, "application/vnd.ms-excel", "xls"),
    ("jpeg", samples.jpeg_with_gps, FileKind.JPEG, "image/jpeg", "jpg"),
    ("png", samples.png_with_metadata, FileKind.PNG, "image/png", "png"),
    ("gif", samples.gif, FileKind.GIF, "image/gif", "gif"),
    ("webp", samples.webp, FileKind.WEBP, "image/webp", "webp"),
    ("heic", samples.heic, FileKind.HEIC, "image/heic", "heic"),
]


@pytest.mark.parametrize(
    ("make", "kind", "mime", "ext"), [a[1:] for a in ACCEPTED], ids=[a[0] for a in ACCEPTED]
)
def test_every_accepted_type_is_recognised_from_bytes_and_path(
    tmp_path: Path, make: Callable[[], bytes], kind: FileKind, mime: str, ext: str
) -> None:
    data = make()
    # Saved under a misleading name: the name plays no part.
    path = tmp_path / "misleading.txt"
    path.write_bytes(data)
    assert classify(data) is kind
    assert classify(path) is kind
    assert (kind.mime, kind.extension) == (mime, ext)


def refused(data: bytes) -> UnsupportedFileType:
    with pytest.raises(UnsupportedFileType) as err:
        classify(data)
    assert err.value.code == "unsupported_file_type"
    return err.value


@pytest.mark.parametrize(
    "data",
    [samples.HTML, samples.SVG, samples.EXE, samples.ELF, samples.TEXT, b"\x00" * 100],
    ids=["html", "svg", "exe", "elf", "text", "zeros"],
)
def test_other_content_is_refused(data: bytes) -> None:
    assert refused(data).details["reason"] == "unrecognised"


def test_empty_file_is_refused() -> None:
    assert refused(b"").details["reason"] == "empty"


def test_html_mentioning_a_pdf_header_is_a_polyglot() -> None:
    fake = b"<html><body>%PDF-1.4 not really</body></html>\nstartxref\n0\n%%EOF\n"
    assert refused(fake).details["reason"] == "polyglot"


def test_pdf_zip_polyglot_is_refused() -> None:
    data = samples.pdf_zip_polyglot()
    assert zipfile.is_zipfile(io.BytesIO(data))  # it really is both
    assert refused(data).details["reason"] == "polyglot"


def test_zip_then_pdf_is_refused() -> None:
    data = samples.zip_of({"a.txt": b"x"}) + samples.pdf_document()
    assert refused(data).details["reason"] == "polyglot"


def test_image_with_an_appended_zip_is_refused() -> None:
    data = samples.jpeg_with_gps() + samples.zip_of({"evil.html": b"<script>"})
    assert refused(data).details["reason"] == "polyglot"


def test_pdf_with_data_after_its_end_is_refused() -> None:
    data = samples.pdf_document() + b"<script>alert(1)</script>"
    assert refused(data).details["reason"] == "polyglot"


def test_pdf_after_whitespace_is_accepted_after_markup_is_not() -> None:
    assert classify(b"\r\n  " + samples.pdf_document()) is FileKind.PDF
    assert refused(b"<p>" + samples.pdf_document()).details["reason"] == "polyglot"


def test_pdf_without_trailer_is_corrupt() -> None:
    data = samples.pdf_document()
    with pytest.raises(CorruptFile) as err:
        classify(data[: data.rindex(b"startxref")])
    assert err.value.details["reason"] == "pdf_trailer"


def test_pdf_with_a_bad_version_is_corrupt() -> None:
    with pytest.raises(CorruptFile):
        classify(samples.pdf_document().replace(b"%PDF-1.4", b"%PDF-x.y", 1))


def test_image_magic_with_garbage_is_corrupt() -> None:
    for magic in (b"\xff\xd8\xff\xe0", b"\x89PNG\r\n\x1a\n", b"GIF89a", b"RIFF\0\0\0\0WEBPVP8 "):
        with pytest.raises(CorruptFile):
            classify(magic + b"\x13" * 300)


def test_pixel_flood_png_is_refused_by_the_sniffer() -> None:
    with pytest.raises(ImageTooLarge) as err:
        classify(samples.png_declaring(100_000, 100_000))
    assert err.value.code == "image_too_large"


def test_heif_brands() -> None:
    def ftyp(major: bytes, *compatible: bytes) -> bytes:
        body = major + b"\0\0\0\0" + b"".join(compatible)
        return (8 + len(body)).to_bytes(4, "big") + b"ftyp" + body

    assert image_kind(ftyp(b"heic", b"mif1", b"heic")) is FileKind.HEIC
    assert image_kind(ftyp(b"mif1", b"mif1", b"heic")) is FileKind.HEIC
    assert image_kind(ftyp(b"avif", b"mif1", b"avif")) is None  # AVIF is not accepted
    assert image_kind(ftyp(b"mif1", b"mif1", b"avif")) is None
    assert image_kind(ftyp(b"isom", b"mp41")) is None  # an MP4 video


def test_heic_is_refused_clearly_without_pillow_heif(monkeypatch: pytest.MonkeyPatch) -> None:
    from chatd.attachments import images

    data = samples.heic()
    monkeypatch.setattr(images, "HEIC_SUPPORTED", False)
    error = refused(data)
    assert error.details["reason"] == "heic_unavailable" and "JPEG" in error.message
