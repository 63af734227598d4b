"""Real files of every accepted type, and the hostile corpus, made on the fly.

Images come from Pillow / pillow-heif, OOXML from ``zipfile`` with the minimal parts Word and
Excel need, legacy Office from ``ole2_builder``, PDFs written by hand (with a correct xref
table) and by Pillow.  Metadata scanners at the end read the raw bytes of an output image to
prove nothing but pixels and the few structural blocks are left.
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from pathlib import Path

from PIL import Image

GPS = {1: "N", 2: (48.0, 51.0, 29.6), 3: "E", 4: (2.0, 17.0, 40.2), 5: 0, 6: 35.0}
SECRET = b"Dr-Secret-Location"


# ----------------------------------------------------------------------------- images


def two_colour(size: tuple[int, int] = (40, 20), mode: str = "RGB") -> Image.Image:
    """Left half red, right half blue (so a rotation can be seen)."""
    img = Image.new("RGB", size, (0, 0, 255))
    img.paste((255, 0, 0), (0, 0, size[0] // 2, size[1]))
    return img.convert(mode)


def gps_exif(orientation: int = 1) -> Image.Exif:
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = "PhoneMaker"
    exif[0x0110] = SECRET.decode()
    exif[0x8825] = GPS
    return exif


def jpeg_with_gps(orientation: int = 6) -> bytes:
    out = io.BytesIO()
    two_colour().save(
        out,
        "JPEG",
        quality=95,
        exif=gps_exif(orientation),
        comment=SECRET,
        xmp=b"<x:xmpmeta xmlns:x='adobe:ns:meta/'>" + SECRET + b"</x:xmpmeta>",
    )
    return out.getvalue()


def png_with_metadata() -> bytes:
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", SECRET.decode())
    info.add_itxt("XML:com.adobe.xmp", SECRET.decode(), zip=True)
    out = io.BytesIO()
    two_colour(mode="RGBA").save(out, "PNG", pnginfo=info, exif=gps_exif(6))
    return out.getvalue()


def png16_grey() -> bytes:
    out = io.BytesIO()
    Image.new("I;16", (30, 10), 40000).save(out, "PNG")
    return out.getvalue()


def gif(frames: int = 1, size: tuple[int, int] = (24, 16)) -> bytes:
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)]
    images = [Image.new("RGB", size, colours[i % 4]).convert("P") for i in range(frames)]
    out = io.BytesIO()
    images[0].save(
        out,
        "GIF",
        save_all=frames > 1,
        append_images=images[1:],
        duration=[70 + 10 * i for i in range(frames)] if frames > 1 else 100,
        loop=0,
        comment=SECRET,
    )
    return out.getvalue()


def webp(*, lossless: bool = False, frames: int = 1) -> bytes:
    images = [two_colour(mode="RGBA").rotate(180 * i) for i in range(frames)]
    for img in images:
        img.paste((0, 0, 0, 0), (0, 0, 4, 4))  # a transparent corner
    out = io.BytesIO()
    images[0].save(
        out,
        "WEBP",
        lossless=lossless,
        quality=90,
        exif=gps_exif(1),
        xmp=SECRET,
        save_all=frames > 1,
        append_images=images[1:],
        duration=80,
    )
    return out.getvalue()


def heic(orientation: int = 6) -> bytes:
    import pillow_heif

    pillow_heif.register_heif_opener()
    out = io.BytesIO()
    two_colour((64, 32)).save(out, "HEIF", quality=90, exif=gps_exif(orientation).tobytes())
    return out.getvalue()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data))
        + kind
        + data
        + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )


def png_declaring(width: int, height: int) -> bytes:
    """A pixel-flood PNG: an IHDR claiming ``width`` × ``height`` and a tiny IDAT."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
    idat = zlib.compress(b"\x00" * 64)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )


# ----------------------------------------------------------------------------- PDF


def pdf_document(text: str = "Compte rendu", *, stream: bytes | None = None) -> bytes:
    """A minimal but valid one-page PDF 1.4, with a correct cross-reference table;
    ``stream``: the data of one more (unreferenced) stream object, last before the xref."""
    content = f"BT /F1 12 Tf 20 100 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] /Contents 4 0 R"
        b" /Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    if stream is not None:
        objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


def pdf_from_pillow() -> bytes:
    out = io.BytesIO()
    two_colour().save(out, "PDF")
    return out.getvalue()


def small_zip() -> bytes:
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("payload.html", "<script>alert(1)</script>")
    return archive.getvalue()


def pdf_hiding_zip(before_end: int = 65 * 1024) -> bytes:
    """A valid PDF holding a ZIP in a stream, its end record ``before_end`` bytes before the
    end of the file: out of ``zipfile.is_zipfile``'s reach when that is over 64 KiB."""
    archive = small_zip()
    padding = b"\n" + b"%" * max(0, before_end - 400)  # the xref and trailer add the rest
    return pdf_document(stream=archive + padding)


def pdf_zip_polyglot() -> bytes:
    """A PDF with a ZIP appended whose comment ends in ``%%EOF``: both readers accept it."""
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("payload.html", "<script>alert(1)</script>")
        zf.comment = b"\nstartxref\n0\n%%EOF\n"
    return pdf_document() + archive.getvalue()


# ----------------------------------------------------------------------------- OOXML

_RELS = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
    'relationships/officeDocument" Target="{target}"/></Relationships>'
)
_TYPES = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.'
    'relationships+xml"/><Default Extension="xml" ContentType="application/xml"/>'
    "{overrides}</Types>"
)
_WORD_MAIN = "application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"
_XL_MAIN = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"
_XL_SHEET = "application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"


def _override(part: str, content_type: str) -> str:
    return f'<Override PartName="/{part}" ContentType="{content_type}"/>'


def docx_parts(main_type: str = _WORD_MAIN) -> dict[str, bytes]:
    body = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        '<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">'
        "<w:body><w:p><w:r><w:t>Compte rendu de consultation</w:t></w:r></w:p></w:body>"
        "</w:document>"
    )
    return {
        "[Content_Types].xml": _TYPES.format(
            overrides=_override("word/document.xml", main_type)
        ).encode(),
        "_rels/.rels": _RELS.format(target="word/document.xml").encode(),
        "word/document.xml": body.encode(),
    }


def xlsx_parts() -> dict[str, bytes]:
    ns = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
    rel_ns = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
    workbook = (
        f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<workbook xmlns="{ns}"'
        f' xmlns:r="{rel_ns}"><sheets><sheet name="Feuil1" sheetId="1" r:id="rId1"/>'
        "</sheets></workbook>"
    )
    workbook_rels = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        f'<Relationship Id="rId1" Type="{rel_ns}/worksheet" Target="worksheets/sheet1.xml"/>'
        "</Relationships>"
    )
    sheet = (
        f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<worksheet xmlns="{ns}">'
        '<sheetData><row r="1"><c r="A1"><v>42</v></c></row></sheetData></worksheet>'
    )
    overrides = _override("xl/workbook.xml", _XL_MAIN) + _override(
        "xl/worksheets/sheet1.xml", _XL_SHEET
    )
    return {
        "[Content_Types].xml": _TYPES.format(overrides=overrides).encode(),
        "_rels/.rels": _RELS.format(target="xl/workbook.xml").encode(),
        "xl/workbook.xml": workbook.encode(),
        "xl/_rels/workbook.xml.rels": workbook_rels.encode(),
        "xl/worksheets/sheet1.xml": sheet.encode(),
    }


def zip_of(parts: dict[str, bytes], *, compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=compression) as zf:
        for name, data in parts.items():
            zf.writestr(name, data)
    return out.getvalue()


def docx() -> bytes:
    return zip_of(docx_parts())


def xlsx() -> bytes:
    return zip_of(xlsx_parts())


def write_zip_bomb(path: Path, megabytes: int = 200) -> None:
    """A docx-shaped zip with a part of ``megabytes`` MB of zeros, compressed while streaming
    (never held in memory)."""
    zeros = b"\0" * (1024 * 1024)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for name, data in docx_parts().items():
            zf.writestr(name, data)
        info = zipfile.ZipInfo("word/media/image1.png")
        info.compress_type = zipfile.ZIP_DEFLATED
        with zf.open(info, "w", force_zip64=True) as part:
            for _ in range(megabytes):
                part.write(zeros)


# ----------------------------------------------------------------------------- other

HTML = b"<!DOCTYPE html>\n<html><body><script>alert('x')</script></body></html>\n"
SVG = (
    b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10">'
    b"<script>alert(1)</script><rect width='10' height='10'/></svg>\n"
)
EXE = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff" + b"\0" * 200 + b"PE\0\0"
ELF = b"\x7fELF\x02\x01\x01" + b"\0" * 200
TEXT = "Patiente : Hélène Dupont\nTension 12/8\n".encode()


# ----------------------------------------------------------------------------- scanners


def jpeg_markers(data: bytes) -> list[int]:
    """The marker bytes of a JPEG's segments before the scan (APPn = 0xE0–0xEF, COM = 0xFE)."""
    assert data[:2] == b"\xff\xd8"
    pos, markers = 2, []
    while pos < len(data):
        assert data[pos] == 0xFF
        marker = data[pos + 1]
        markers.append(marker)
        if marker == 0xDA:  # start of scan
            break
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        pos += 2 + length
    return markers


def png_chunks(data: bytes) -> list[bytes]:
    pos, kinds = 8, []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kinds.append(data[pos + 4 : pos + 8])
        pos += 12 + length
    return kinds


def webp_chunks(data: bytes) -> list[bytes]:
    assert data[:4] == b"RIFF" and data[8:12] == b"WEBP"
    pos, kinds = 12, []
    while pos + 8 <= len(data):
        kind = data[pos : pos + 4]
        (length,) = struct.unpack("<I", data[pos + 4 : pos + 8])
        kinds.append(kind)
        pos += 8 + length + (length & 1)
    return kinds


def gif_extensions(data: bytes) -> list[tuple[int, bytes]]:
    """(label, first sub-block) of every extension block of a GIF."""
    assert data[:6] in (b"GIF87a", b"GIF89a")
    flags = data[10]
    pos = 13 + (3 * 2 ** ((flags & 7) + 1) if flags & 0x80 else 0)
    found = []

    def skip_blocks(p: int) -> tuple[int, bytes]:
        first = b""
        while data[p]:
            if not first:
                first = data[p + 1 : p + 1 + data[p]]
            p += 1 + data[p]
        return p + 1, first

    while data[pos] != 0x3B:
        if data[pos] == 0x21:
            label = data[pos + 1]
            pos, first = skip_blocks(pos + 2)
            found.append((label, first))
        elif data[pos] == 0x2C:
            packed = data[pos + 9]
            pos += 10 + (3 * 2 ** ((packed & 7) + 1) if packed & 0x80 else 0)
            pos, _ = skip_blocks(pos + 1)  # LZW minimum code size, then data
        else:
            raise AssertionError(f"bad GIF block {data[pos]:#x}")
    return found


# ----------------------------------------------------------------------------- hidden macros

_VBA_TYPE = "application/vnd.ms-office.vbaProject"
_VBA_REL = "http://schemas.microsoft.com/office/2006/relationships/vbaProject"
_OLE2_HEAD = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 504


def _document_rels(rel_type: str, target: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        f'<Relationship Id="rId9" Type="{rel_type}" Target="{target}"/></Relationships>'
    ).encode()


def docx_hiding_vba(*, by: str) -> bytes:
    """A .docx whose VBA project is a part not named ``vbaProject.bin`` (``word/aide.dat``),
    declared ``by`` its content type (``content_type``) or only by its relationship
    (``relationship``)."""
    parts = docx_parts()
    parts["word/aide.dat"] = _OLE2_HEAD
    if by == "content_type":
        default = f'<Default Extension="dat" ContentType="{_VBA_TYPE}"/>'
        parts["[Content_Types].xml"] = parts["[Content_Types].xml"].replace(
            b"<Default Extension", default.encode() + b"<Default Extension", 1
        )
        parts["word/_rels/document.xml.rels"] = _document_rels(
            "http://schemas.openxmlformats.org/officeDocument/2006/relationships/image", "aide.dat"
        )
    else:
        parts["word/_rels/document.xml.rels"] = _document_rels(_VBA_REL, "aide.dat")
    return zip_of(parts)


def docx_main_type_elsewhere() -> bytes:
    """A .docx whose main part has no Override of its own; the docx main type appears only in
    another part's Override (an old check that searched the file for it let it pass)."""
    parts = docx_parts()
    parts["[Content_Types].xml"] = parts["[Content_Types].xml"].replace(
        b'PartName="/word/document.xml"', b'PartName="/word/autre.xml"'
    )
    return zip_of(parts)
