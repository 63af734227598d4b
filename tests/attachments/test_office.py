"""OOXML and legacy Office checks: real structure, limits, and no macros."""

from __future__ import annotations

import io
import struct
import time
import warnings
import zipfile
from pathlib import Path
from typing import Any

import pytest

from chatd.attachments.kinds import FileKind
from chatd.attachments.office import ZipLimits, check_ooxml
from chatd.attachments.ole2 import check_ole2
from chatd.attachments.sniff import classify
from chatd.core.errors import AttachmentError, CorruptFile, UnsupportedFileType
from tests.attachments import samples
from tests.attachments.ole2_builder import (
    Storage,
    Stream,
    build_ole2,
    excel_workbook,
    word_document,
)


@pytest.fixture(scope="module")
def zip_bomb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("bomb") / "rapport.docx"
    samples.write_zip_bomb(path, megabytes=200)
    return path


def reason(data: bytes, error: type[AttachmentError] = UnsupportedFileType) -> str:
    with pytest.raises(error) as err:
        classify(data)
    return str(err.value.details["reason"])


def patch_central(data: bytes, name: str, offset: int, fmt: str, value: int) -> bytes:
    """Change one field of ``name``'s central-directory record (offsets per APPNOTE 4.3.12)."""
    encoded = name.encode()
    pos = data.rindex(b"PK\x01\x02", 0, data.rindex(encoded))
    out = bytearray(data)
    struct.pack_into(fmt, out, pos + offset, value)
    return bytes(out)


# ----------------------------------------------------------------------------- OOXML


def test_only_content_types_and_relationships_are_decompressed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    opened: list[str] = []
    real_open = zipfile.ZipFile.open

    def spy(self: zipfile.ZipFile, name: Any, *args: Any, **kwargs: Any) -> Any:
        opened.append(name.filename if isinstance(name, zipfile.ZipInfo) else name)
        return real_open(self, name, *args, **kwargs)

    data = samples.xlsx()
    monkeypatch.setattr(zipfile.ZipFile, "open", spy)
    assert classify(data) is FileKind.XLSX
    # [Content_Types].xml, then the relationships (small parts, read to find a VBA project)
    assert opened == ["[Content_Types].xml", "_rels/.rels", "xl/_rels/workbook.xml.rels"]


def test_stored_entries_are_fine() -> None:
    data = samples.zip_of(samples.docx_parts(), compression=zipfile.ZIP_STORED)
    assert classify(data) is FileKind.DOCX


def test_zip_bomb_named_docx_is_refused_without_inflating_it(zip_bomb: Path) -> None:
    assert zip_bomb.stat().st_size < 2 * 1024 * 1024  # 200 MB of zeros inside
    with zipfile.ZipFile(zip_bomb) as zf:
        assert sum(i.file_size for i in zf.infolist()) > 200 * 1000 * 1000
    started = time.perf_counter()
    with pytest.raises(UnsupportedFileType) as err:
        classify(zip_bomb)
    assert err.value.details["reason"] == "zip_limits"
    assert "expands" in err.value.message
    assert time.perf_counter() - started < 1.0  # inflating 200 MB would take longer


def test_total_uncompressed_limit() -> None:
    data = samples.docx()
    assert check_ooxml(io.BytesIO(data)) is FileKind.DOCX
    with pytest.raises(UnsupportedFileType, match="more than 100 bytes") as err:
        check_ooxml(io.BytesIO(data), ZipLimits(max_total_uncompressed=100))
    assert err.value.details["reason"] == "zip_limits"


def test_entry_count_limit() -> None:
    parts = samples.docx_parts() | {f"word/media/x{i}.bin": b"" for i in range(1000)}
    assert reason(samples.zip_of(parts)) == "zip_limits"


def test_entry_lying_about_its_size_is_refused() -> None:
    noise = bytes((i * 7919 + i // 3) % 251 for i in range(200_000))  # hardly compressible
    parts = samples.docx_parts() | {"word/media/a.bin": noise}
    data = patch_central(samples.zip_of(parts), "word/media/a.bin", 24, "<I", 10)
    assert reason(data) == "zip_limits"


def test_encrypted_entry_is_refused() -> None:
    data = patch_central(samples.docx(), "word/document.xml", 8, "<H", 0x1)
    assert reason(data) == "encrypted"


@pytest.mark.parametrize("name", ["../evil.sh", "/etc/cron.d/x", "word\\..\\x", "C:/x", "a/\x01"])
def test_unsafe_paths_are_refused(name: str) -> None:
    parts = samples.docx_parts() | {name: b"x"}
    assert reason(samples.zip_of(parts), CorruptFile) == "zip_path"


def test_duplicate_names_are_refused() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns when writing a duplicate
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w") as zf:
            for name, data in samples.docx_parts().items():
                zf.writestr(name, data)
            zf.writestr("word/document.xml", b"<other/>")
    assert reason(out.getvalue(), CorruptFile) == "zip_dup"


def test_macro_documents_are_refused() -> None:
    parts = samples.docx_parts() | {"word/vbaProject.bin": b"\xd0\xcf\x11\xe0"}
    assert reason(samples.zip_of(parts)) == "macros"
    docm = "application/vnd.ms-word.document.macroEnabled.main+xml"
    assert reason(samples.zip_of(samples.docx_parts(docm))) == "macros"
    dotx = "application/vnd.openxmlformats-officedocument.wordprocessingml.template.main+xml"
    assert reason(samples.zip_of(samples.docx_parts(dotx))) == "content_type"


def test_zip_that_is_not_office_is_refused() -> None:
    assert reason(samples.zip_of({"notes.txt": b"hello"})) == "not_office"
    parts = samples.docx_parts()
    del parts["_rels/.rels"]
    assert reason(samples.zip_of(parts)) == "not_office"


def test_word_and_excel_at_once_is_refused() -> None:
    parts = samples.docx_parts() | {"xl/workbook.xml": b"<workbook/>"}
    assert reason(samples.zip_of(parts), CorruptFile) == "ambiguous"


def test_dtd_in_content_types_is_refused() -> None:
    parts = samples.docx_parts()
    parts["[Content_Types].xml"] = (
        b'<!DOCTYPE x [<!ENTITY a "aaaa">]>' + parts["[Content_Types].xml"].split(b"\n", 1)[1]
    )
    assert reason(samples.zip_of(parts), CorruptFile) == "xml_dtd"


def test_damaged_archive_is_corrupt() -> None:
    data = samples.docx()
    assert reason(data[: len(data) // 2], CorruptFile) == "zip"


# ----------------------------------------------------------------------------- OLE2


def test_legacy_word_and_excel() -> None:
    assert check_ole2(io.BytesIO(word_document())) is FileKind.DOC
    assert check_ole2(io.BytesIO(excel_workbook())) is FileKind.XLS
    assert check_ole2(io.BytesIO(excel_workbook(name="Book"))) is FileKind.XLS  # BIFF5


def test_stream_names_are_case_insensitive() -> None:
    assert classify(excel_workbook(name="WORKBOOK")) is FileKind.XLS


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (word_document(extra=[Storage("Macros")]), "macros"),
        (excel_workbook(extra=[Storage("_VBA_PROJECT_CUR")]), "macros"),
        (build_ole2([Stream("EncryptedPackage", b"\0" * 5000)]), "encrypted"),
        (build_ole2([Stream("Contents", b"hello" * 10)]), "not_office"),  # e.g. a .msg or .msi
    ],
    ids=["word-macros", "excel-macros", "encrypted-ooxml", "other-compound-file"],
)
def test_refused_compound_files(data: bytes, expected: str) -> None:
    assert reason(data) == expected


def test_wrong_stream_signature_is_corrupt() -> None:
    fake = build_ole2([Stream("WordDocument", b"MZ" + b"\0" * 5000)])
    assert reason(fake, CorruptFile) == "ole2"
    fake = build_ole2([Stream("Workbook", b"<html>" + b"\0" * 100)])
    assert reason(fake, CorruptFile) == "ole2"


def test_word_and_excel_streams_together_are_corrupt() -> None:
    both = build_ole2(
        [
            Stream("WordDocument", b"\xec\xa5" + b"\0" * 5000),
            Stream("Workbook", b"\x09\x08" + b"\0" * 100),
        ]
    )
    with pytest.raises(CorruptFile, match="both a Word and an Excel file"):
        classify(both)


def test_truncated_compound_file_is_corrupt() -> None:
    data = word_document()
    assert reason(data[:1200], CorruptFile) == "ole2"


def test_loop_in_the_fat_is_refused_quickly() -> None:
    data = bytearray(word_document())
    # Sector 0 is the FAT; make the directory chain (sector 1) point to itself.
    struct.pack_into("<I", data, 512 + 4 * 1, 1)
    started = time.perf_counter()
    assert reason(bytes(data), CorruptFile) == "ole2"
    assert time.perf_counter() - started < 1.0


def test_loop_in_the_directory_tree_is_refused() -> None:
    data = bytearray(word_document())
    # Directory in sector 1 (file offset 1024); entry 1's right sibling points back to 1.
    struct.pack_into("<I", data, 1024 + 128 + 72, 1)
    assert reason(bytes(data), CorruptFile) == "ole2"


def test_bad_header_fields_are_corrupt() -> None:
    data = bytearray(word_document())
    struct.pack_into("<H", data, 30, 10)  # sector shift 10 does not exist
    assert reason(bytes(data), CorruptFile) == "ole2"


@pytest.mark.parametrize("by", ["content_type", "relationship"])
def test_a_vba_project_under_another_name_is_refused(by: str) -> None:
    assert reason(samples.docx_hiding_vba(by=by)) == "macros"


def test_the_main_part_needs_its_own_override() -> None:
    assert reason(samples.docx_main_type_elsewhere()) == "content_type"
    single_quoted = samples.docx_parts()
    single_quoted["[Content_Types].xml"] = single_quoted["[Content_Types].xml"].replace(
        b'PartName="/word/document.xml"', b"PartName='/WORD/document.xml'"
    )
    assert classify(samples.zip_of(single_quoted)) is FileKind.DOCX  # OPC: case-insensitive
