"""Attachments over HTTP against a real server: upload, validation, cleaning, references from
messages, download with visibility, ranges, headers, the hostile corpus, tampering, expiry.

The files are made on the fly by ``tests/attachments/samples.py`` (and the OLE2 builder).
"""

from __future__ import annotations

import asyncio
import io
import time
import urllib.parse
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from chatd.attachments.images import HEIC_SUPPORTED
from chatd.core.errors import ValidationError
from chatd.core.ids import parse_attachment_id
from chatd.crypto.chunks import CHUNK_OVERHEAD, DEFAULT_CHUNK_SIZE, HEADER_BYTES
from chatd.gateway.attachments import UNSATISFIABLE, content_disposition, file_name, parse_range
from tests.attachments import samples
from tests.attachments.ole2_builder import excel_workbook, word_document
from tests.conftest import run_chatd
from tests.gateway.client import WsClient, cmid
from tests.gateway.conftest import (
    LENIENT,
    Account,
    Admin,
    ServerProcess,
    start_server,
    stop_server,
)

MIB = 1024 * 1024
LIMIT = 10 * MIB
SECURITY = {
    "x-content-type-options": "nosniff",
    "content-security-policy": "default-src 'none'; sandbox",
    "cache-control": "private, no-store",
}
DOCUMENT_KINDS = {"pdf", "docx", "xlsx", "doc", "xls"}


def auth(account: Account) -> dict[str, str]:
    return {"Authorization": f"Bearer {account.token}"}


@pytest.fixture
async def http(admin: Admin) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=admin.server.base_url, timeout=30) as client:
        yield client


async def upload(
    http: httpx.AsyncClient, account: Account, data: bytes, name: str = "fichier"
) -> httpx.Response:
    headers = {**auth(account), "X-File-Name": urllib.parse.quote(name)}
    return await http.post("/v1/attachments", content=data, headers=headers)


async def uploaded(
    http: httpx.AsyncClient, account: Account, data: bytes, name: str = "fichier"
) -> dict[str, Any]:
    response = await upload(http, account, data, name)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def padded_pdf(size: int) -> bytes:
    """A PDF (as far as the server checks: header and trailer) of exactly ``size`` bytes."""
    head, tail = b"%PDF-1.4\n%", b"\nstartxref\n0\n%%EOF\n"
    filler = bytes((i * 7 + 32) % 95 + 32 for i in range(251))
    body = (filler * (size // len(filler) + 1))[: size - len(head) - len(tail)]
    return head + body + tail


def blob_files(server: ServerProcess) -> set[Path]:
    root = server.data_dir / "attachments"
    return {p for p in root.glob("??/*") if p.is_file()}


def spooled(server: ServerProcess) -> list[Path]:
    spool = server.data_dir / "attachments" / "spool"
    return list(spool.iterdir()) if spool.exists() else []


# ----------------------------------------------------------------------------- round trips


def every_type() -> list[tuple[str, bytes, str]]:
    """(file name as sent, content, kind stored) for every accepted type."""
    jpeg = io.BytesIO()
    samples.two_colour((640, 480)).save(jpeg, "JPEG", quality=90)
    files = [
        ("ordonnance.pdf", samples.pdf_document("Ordonnance"), "pdf"),
        ("courrier de sortie.docx", samples.docx(), "docx"),
        ("bilan.xlsx", samples.xlsx(), "xlsx"),
        ("ancien courrier.doc", word_document(), "doc"),
        ("résultats.xls", excel_workbook(), "xls"),
        ("plaie.jpg", jpeg.getvalue(), "jpeg"),
        ("ecg.png", samples.png_with_metadata(), "png"),
        ("schema.gif", samples.gif(frames=3), "gif"),
        ("photo.webp", samples.webp(), "webp"),
    ]
    if HEIC_SUPPORTED:
        files.append(("IMG_0001.HEIC", samples.heic(), "jpeg"))  # stored re-encoded as JPEG
    return files


async def test_every_accepted_type_is_uploaded_sent_and_downloaded(
    admin: Admin, http: httpx.AsyncClient
) -> None:
    alice, bob = await admin.users(2)
    a = await admin.connect(alice)
    b = await admin.connect(bob)
    conv = await a.create([bob.id], name="Dossier", text="dossier complet")
    files = every_type()
    assert len(files) == 10 or not HEIC_SUPPORTED
    infos = [await uploaded(http, alice, data, name) for name, data, _ in files]
    for (name, data, kind), info in zip(files, infos, strict=True):
        assert info["kind"] == kind, name
        assert parse_attachment_id(info["id"]) is not None
        assert info["expires_at"] > time.time() * 1000
        if kind in DOCUMENT_KINDS:
            assert (info["size"], info["thumbnail"], info["width"]) == (len(data), False, None)
        else:
            assert info["thumbnail"] and info["width"] and info["height"]
    ack = await a.send(conv, "", attachments=[i["id"] for i in infos])

    # The event pushed to the other member describes every attachment.
    await b.wait_seq(conv, ack["first_seq"])
    (event,) = [e for e in b.events(conv) if e["seq"] == ack["first_seq"]]
    assert event["text"] == ""
    refs = event["attachments"]
    assert [r["id"] for r in refs] == [i["id"] for i in infos]
    for ref, info in zip(refs, infos, strict=True):
        assert set(ref) == {"id", "name", "mime", "size", "width", "height", "thumbnail"}
        assert ref == {key: info[key] for key in ref}
    assert refs[1]["name"] == "courrier de sortie.docx"
    if HEIC_SUPPORTED:
        assert refs[-1]["name"] == "IMG_0001.jpg" and refs[-1]["mime"] == "image/jpeg"

    for (name, data, kind), info in zip(files, infos, strict=True):
        response = await http.get(f"/v1/attachments/{info['id']}", headers=auth(bob))
        assert response.status_code == 200, (name, response.text)
        assert response.headers["content-type"] == info["mime"]
        assert int(response.headers["content-length"]) == info["size"] == len(response.content)
        if kind in DOCUMENT_KINDS:
            assert response.content == data  # documents are stored as sent
            thumb = await http.get(f"/v1/attachments/{info['id']}/thumbnail", headers=auth(bob))
            assert thumb.status_code == 404 and thumb.json()["code"] == "thumbnail_not_found"
        else:
            image = Image.open(io.BytesIO(response.content))
            assert (image.format or "").lower() == kind
            assert image.size == (info["width"], info["height"])
            thumb = await http.get(f"/v1/attachments/{info['id']}/thumbnail", headers=auth(bob))
            assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
            assert max(Image.open(io.BytesIO(thumb.content)).size) <= 320
            assert thumb.headers["x-content-type-options"] == "nosniff"


async def test_gps_exif_is_gone_after_a_round_trip(admin: Admin, http: httpx.AsyncClient) -> None:
    alice, bob = await admin.users(2)
    a = await admin.connect(alice)
    conv = await a.create([bob.id], text=None)
    source = samples.jpeg_with_gps(orientation=6)
    assert Image.open(io.BytesIO(source)).getexif().get_ifd(0x8825)  # GPS really is in there
    info = await uploaded(http, alice, source, "plaie.jpeg")
    await a.send(conv, "la plaie ce matin", attachments=[info["id"]])
    for path in (f"/v1/attachments/{info['id']}", f"/v1/attachments/{info['id']}/thumbnail"):
        data = (await http.get(path, headers=auth(bob))).content
        image = Image.open(io.BytesIO(data))
        assert len(image.getexif()) == 0 and not image.getexif().get_ifd(0x8825)
        assert not {"exif", "xmp", "comment", "icc_profile"} & image.info.keys()
        markers = samples.jpeg_markers(data)
        assert 0xE1 not in markers and 0xFE not in markers  # no APP1 (EXIF/XMP), no comment
        assert samples.SECRET not in data and b"PhoneMaker" not in data
    assert (info["width"], info["height"]) == (20, 40)  # the orientation was applied


# ----------------------------------------------------------------------------- hostile uploads


@pytest.fixture(scope="module")
def zip_bomb(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("bomb") / "rapport.docx"
    samples.write_zip_bomb(path, megabytes=200)
    return path.read_bytes()


@pytest.mark.parametrize(
    ("case", "name", "status", "code"),
    [
        ("pixel_flood", "flood.png", 422, "image_too_large"),
        ("zip_bomb", "rapport.docx", 415, "unsupported_file_type"),
        ("polyglot", "facture.pdf", 415, "unsupported_file_type"),
        ("html", "compte-rendu.pdf", 415, "unsupported_file_type"),
        ("svg", "schema.svg", 415, "unsupported_file_type"),
        ("truncated_jpeg", "photo.jpg", 422, "corrupt_file"),
        ("empty", "vide.pdf", 415, "unsupported_file_type"),
    ],
)
async def test_hostile_uploads_are_refused_and_leave_nothing(
    admin: Admin,
    http: httpx.AsyncClient,
    zip_bomb: bytes,
    case: str,
    name: str,
    status: int,
    code: str,
) -> None:
    data = {
        "pixel_flood": samples.png_declaring(100_000, 100_000),
        "zip_bomb": zip_bomb,
        "polyglot": samples.pdf_zip_polyglot(),
        "html": samples.HTML,
        "svg": samples.SVG,
        "truncated_jpeg": samples.jpeg_with_gps()[:200],
        "empty": b"",
    }[case]
    assert len(data) < LIMIT
    (alice,) = await admin.users(1)
    before = blob_files(admin.server)
    response = await upload(http, alice, data, name)
    assert response.status_code == status, response.text
    assert response.json()["code"] == code
    assert set(response.json()) == {"code", "message"}
    assert blob_files(admin.server) == before
    assert spooled(admin.server) == []


async def test_an_upload_one_byte_over_the_limit_is_refused(
    admin: Admin, http: httpx.AsyncClient
) -> None:
    (alice,) = await admin.users(1)
    data = padded_pdf(LIMIT + 1)
    # With a Content-Length: refused before the body is read.
    response = await http.post("/v1/attachments", content=data, headers=auth(alice))
    assert response.status_code == 413
    assert response.json() == {  # French unless the client asks for another language
        "code": "attachment_too_large",
        "message": "Ce fichier dépasse 10 Mio, la taille maximale des pièces jointes.",
    }
    in_english = {**auth(alice), "Accept-Language": "en-GB,en;q=0.9"}
    response = await http.post("/v1/attachments", content=data, headers=in_english)
    assert response.json() == {
        "code": "attachment_too_large",
        "message": "This file is larger than 10 MiB, the limit for attachments.",
    }

    # Chunked (no length announced): cut while reading, at LIMIT + 1 bytes.
    async def pieces() -> AsyncIterator[bytes]:
        for start in range(0, len(data), 256 * 1024):
            yield data[start : start + 256 * 1024]

    response = await http.post("/v1/attachments", content=pieces(), headers=auth(alice))
    assert response.status_code == 413
    assert response.json()["code"] == "attachment_too_large"
    # Exactly the limit is fine.
    ok = await http.post("/v1/attachments", content=padded_pdf(LIMIT), headers=auth(alice))
    assert ok.status_code == 201 and ok.json()["size"] == LIMIT
    assert spooled(admin.server) == []


async def test_an_endless_chunked_upload_is_cut_at_the_limit(admin: Admin) -> None:
    (alice,) = await admin.users(1)
    sent = 0

    def endless() -> Iterator[bytes]:
        nonlocal sent
        piece = b"%PDF-1.4\n" + b"\0" * (64 * 1024 - 9)
        while True:  # never ends: only the server can stop it
            sent += len(piece)
            yield piece

    def post() -> httpx.Response:
        # The blocking client: after its write fails it still reads the answer waiting in the
        # socket (httpx's asyncio transport closes the socket on a failed write, and loses it).
        with httpx.Client(base_url=admin.server.base_url, timeout=30) as client:
            return client.post("/v1/attachments", content=endless(), headers=auth(alice))

    started = time.monotonic()
    before = blob_files(admin.server)
    response = await asyncio.to_thread(post)
    assert response.status_code == 413
    assert response.json()["code"] == "attachment_too_large"
    assert response.headers["connection"] == "close"
    # The spool stopped at LIMIT + 1; the server then read (and dropped) at most LIMIT more
    # before closing, so that the answer was not lost (socket buffers hold the rest).
    assert LIMIT < sent < 3 * LIMIT
    assert time.monotonic() - started < 20
    assert spooled(admin.server) == [] and blob_files(admin.server) == before


async def test_uploads_need_a_valid_session(admin: Admin, http: httpx.AsyncClient) -> None:
    pdf = samples.pdf_document()
    response = await http.post("/v1/attachments", content=pdf)
    assert response.status_code == 401 and response.json()["code"] == "unauthenticated"
    response = await http.post(
        "/v1/attachments", content=pdf, headers={"Authorization": "Bearer nope"}
    )
    assert response.status_code == 401
    newcomer = await admin.user(terms=False)
    response = await upload(http, newcomer, pdf)
    assert response.status_code == 403 and response.json()["code"] == "terms_not_accepted"
    (alice,) = await admin.users(1)
    bad_name = {**auth(alice), "X-File-Name": "%FF%FE.pdf"}
    response = await http.post("/v1/attachments", content=pdf, headers=bad_name)
    assert response.status_code == 400 and response.json()["code"] == "invalid_request"


# ----------------------------------------------------------------------------- references


async def test_messages_refuse_foreign_unknown_and_used_attachments(
    admin: Admin, http: httpx.AsyncClient
) -> None:
    alice, bob = await admin.users(2)
    a = await admin.connect(alice)
    b = await admin.connect(bob)
    conv = await a.create([bob.id])
    mine = (await uploaded(http, alice, samples.pdf_document(), "a.pdf"))["id"]
    theirs = (await uploaded(http, bob, samples.pdf_document(), "b.pdf"))["id"]
    unknown = f"{(parse_attachment_id(mine) or 0) ^ 1:016x}"

    async def refused(client: WsClient, *ids: str) -> dict[str, Any]:
        reply = await client.request(
            "send", client_msg_id=cmid(), conv=conv, text="pj", attachments=list(ids)
        )
        assert reply["op"] == "error", reply
        return reply

    reply = await refused(a, theirs)
    assert reply["code"] == "attachment_not_found" and reply["details"]["attachment"] == theirs
    assert (await refused(a, unknown))["code"] == "attachment_not_found"
    assert (await refused(a, mine, mine))["code"] == "invalid_request"
    assert (await refused(a, "not-an-id"))["code"] == "invalid_request"
    assert (await refused(a, mine.upper() + "0"))["code"] == "invalid_request"
    sent = await a.send(conv, "", attachments=[mine])
    reply = await refused(a, mine)
    assert reply["code"] == "attachment_already_sent"
    # Bob may see Alice's message and its attachment, but not send it again as his own.
    assert (await refused(b, mine))["code"] == "attachment_not_found"
    # A message without text needs at least one attachment.
    empty = await a.request("send", client_msg_id=cmid(), conv=conv)
    assert empty["code"] == "invalid_request"
    # A creation may carry attachments in its first message.
    fresh = (await uploaded(http, alice, samples.docx(), "lettre.docx"))["id"]
    created = await a.ok(
        "create", client_msg_id=cmid(), members=[bob.id], name="Lettre", attachments=[fresh]
    )
    assert created["last_seq"] == 2
    await b.wait_seq(created["conv"], 2)
    assert b.events(created["conv"])[-1]["attachments"][0]["name"] == "lettre.docx"
    assert sent["first_seq"] >= 2


# ----------------------------------------------------------------------------- download


async def test_download_headers_and_visibility(admin: Admin, http: httpx.AsyncClient) -> None:
    alice, bob, carol, eve = await admin.users(4)
    a = await admin.connect(alice)
    c = await admin.connect(carol)
    conv = await a.create([bob.id, carol.id])
    before = await uploaded(http, alice, samples.pdf_document(), "Compte rendu « été ».pdf")
    await a.send(conv, "avant", attachments=[before["id"]])
    await c.ok("leave", client_msg_id=cmid(), conv=conv)
    after = await uploaded(http, alice, samples.pdf_document(), "après.pdf")
    await a.send(conv, "après", attachments=[after["id"]])
    unsent = await uploaded(http, alice, samples.pdf_document(), "brouillon.pdf")

    response = await http.get(f"/v1/attachments/{before['id']}", headers=auth(bob))
    assert response.status_code == 200
    for header, value in SECURITY.items():
        assert response.headers[header] == value
    disposition = response.headers["content-disposition"]
    assert disposition.startswith("attachment; ")
    assert "filename*=UTF-8''Compte%20rendu%20%C2%AB%20%C3%A9t%C3%A9%20%C2%BB.pdf" in disposition
    assert response.headers["accept-ranges"] == "bytes"

    # The leaver keeps what came before their leave.
    response = await http.get(f"/v1/attachments/{before['id']}", headers=auth(carol))
    assert response.status_code == 200 and response.content == samples.pdf_document()
    # Everything a user may not see is one and the same 404.
    refusals = [
        (carol, after["id"]),  # a message after the leave
        (eve, before["id"]),  # never a member
        (bob, unsent["id"]),  # someone else's unsent upload
        (bob, f"{(parse_attachment_id(before['id']) or 0) ^ 1:016x}"),  # unknown
        (bob, "nothing-like-an-id"),
    ]
    bodies = []
    for user, attachment in refusals:
        for suffix in ("", "/thumbnail"):
            response = await http.get(f"/v1/attachments/{attachment}{suffix}", headers=auth(user))
            assert response.status_code == 404, (user.login, attachment, suffix)
            bodies.append(response.json())
    same = {"code": "attachment_not_found", "message": bodies[0]["message"]}
    assert all(body == same for body in bodies)
    # The uploader may fetch their own unsent upload; nobody without a session may fetch any.
    response = await http.get(f"/v1/attachments/{unsent['id']}", headers=auth(alice))
    assert response.status_code == 200
    response = await http.get(f"/v1/attachments/{before['id']}")
    assert response.status_code == 401 and response.json()["code"] == "unauthenticated"


async def test_range_requests(admin: Admin, http: httpx.AsyncClient) -> None:
    alice, bob = await admin.users(2)
    a = await admin.connect(alice)
    conv = await a.create([bob.id])
    data = padded_pdf(3 * MIB + 12345)
    info = await uploaded(http, alice, data, "scanner.pdf")
    await a.send(conv, "scan", attachments=[info["id"]])
    url, size = f"/v1/attachments/{info['id']}", len(data)
    chunk = DEFAULT_CHUNK_SIZE
    for spec, start, stop in [
        ("bytes=0-99", 0, 100),
        (f"bytes={chunk - 10}-{chunk + 9}", chunk - 10, chunk + 10),  # across a chunk boundary
        (f"bytes={MIB - 3}-{2 * MIB + 5}", MIB - 3, 2 * MIB + 6),  # many chunks
        ("bytes=-100", size - 100, size),
        (f"bytes={size - 5}-", size - 5, size),
        (f"bytes=10-{size + 1000}", 10, size),
    ]:
        response = await http.get(url, headers={**auth(bob), "Range": spec})
        assert response.status_code == 206, spec
        assert response.headers["content-range"] == f"bytes {start}-{stop - 1}/{size}"
        assert int(response.headers["content-length"]) == stop - start
        assert response.content == data[start:stop], spec
        assert response.headers["content-disposition"].startswith("attachment;")
    for spec in (f"bytes={size}-", "bytes=-0"):
        response = await http.get(url, headers={**auth(bob), "Range": spec})
        assert response.status_code == 416
        assert response.headers["content-range"] == f"bytes */{size}"
    # Several ranges, another unit, or an If-Range that does not match: the whole file.
    etag = (await http.get(url, headers={**auth(bob), "Range": "bytes=0-0"})).headers["etag"]
    for extra in (
        {"Range": "bytes=0-1,5-6"},
        {"Range": "items=0-1"},
        {"Range": "bytes=0-1", "If-Range": '"another"'},
    ):
        response = await http.get(url, headers={**auth(bob), **extra})
        assert response.status_code == 200 and response.content == data
    response = await http.get(url, headers={**auth(bob), "Range": "bytes=2-3", "If-Range": etag})
    assert response.status_code == 206 and response.content == data[2:4]


# ----------------------------------------------------------------------------- expiry


async def test_an_unsent_upload_is_discarded_after_its_time(
    admin: Admin, http: httpx.AsyncClient
) -> None:
    alice, bob = await admin.users(2)
    a = await admin.connect(alice)
    conv = await a.create([bob.id])
    info = await uploaded(http, alice, samples.pdf_document(), "oubli.pdf")
    attachment_id = parse_attachment_id(info["id"])
    assert attachment_id is not None and admin.server.blobs.exists(attachment_id)
    assert info["expires_at"] - time.time() * 1000 > 23 * 3600 * 1000  # 24 h by default
    # The server sweeps every CHATD_ATTACHMENT_SWEEP_SECONDS; the test sweeps itself, as of
    # the expiry time, through a second store on the same database and files.
    assert attachment_id not in await admin.files.sweep(info["expires_at"] - 1)
    assert attachment_id in await admin.files.sweep(info["expires_at"])
    assert not admin.server.blobs.exists(attachment_id)
    response = await http.get(f"/v1/attachments/{info['id']}", headers=auth(alice))
    assert response.status_code == 404
    reply = await a.request(
        "send", client_msg_id=cmid(), conv=conv, text="pj", attachments=[info["id"]]
    )
    assert reply["code"] == "attachment_not_found"


# ----------------------------------------------------------------------------- tampering


def flip(path: Path, chunk: int) -> None:
    offset = HEADER_BYTES + chunk * (DEFAULT_CHUNK_SIZE + CHUNK_OVERHEAD) + 100
    with path.open("r+b") as fp:
        fp.seek(offset)
        byte = fp.read(1)[0]
        fp.seek(offset)
        fp.write(bytes([byte ^ 0x20]))


async def test_a_tampered_chunk_fails_the_download_loudly_and_verify_names_it(
    tmp_path: Path, password_hash: str
) -> None:
    server = start_server(tmp_path, LENIENT)
    store = server.store()
    await store.open()
    admin = Admin(server, store, password_hash)
    stopped = False
    try:
        alice, bob = await admin.users(2)
        a = await admin.connect(alice)
        conv = await a.create([bob.id])
        data = padded_pdf(2 * MIB)  # 32 chunks of 64 KiB
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
            middle = await uploaded(http, alice, data, "middle.pdf")
            first = await uploaded(http, alice, data, "first.pdf")
            cut = await uploaded(http, alice, data, "cut.pdf")
            await a.send(conv, "", attachments=[middle["id"], first["id"], cut["id"]])
            ids = {
                k: parse_attachment_id(v["id"])
                for k, v in (("m", middle), ("f", first), ("c", cut))
            }
            assert None not in ids.values()
            flip(server.blobs.path(ids["m"] or 0), 20)
            flip(server.blobs.path(ids["f"] or 0), 0)
            path = server.blobs.path(ids["c"] or 0)
            with path.open("r+b") as fp:
                fp.truncate(path.stat().st_size - 1000)

            # Found after the headers were sent: the body is cut short, never completed.
            with pytest.raises(httpx.RemoteProtocolError):
                await http.get(f"/v1/attachments/{middle['id']}", headers=auth(bob))
            # Found before the headers (first chunk, last chunk, or a range starting in it).
            for url, extra in (
                (f"/v1/attachments/{first['id']}", {}),
                (f"/v1/attachments/{cut['id']}", {}),
                (f"/v1/attachments/{middle['id']}", {"Range": f"bytes={20 * DEFAULT_CHUNK_SIZE}-"}),
            ):
                response = await http.get(url, headers={**auth(bob), **extra})
                assert response.status_code == 500, url
                assert response.json()["code"] == "integrity_error"
            # The untouched part of the damaged file is still served by range.
            response = await http.get(
                f"/v1/attachments/{middle['id']}", headers={**auth(bob), "Range": "bytes=0-999"}
            )
            assert response.status_code == 206 and response.content == data[:1000]
        await admin.close()
        stop_server(server)
        stopped = True
        log = server.log()
        assert f"attachment {middle['id']} failed its integrity check while being sent" in log
        assert f"attachment {first['id']} failed its integrity check" in log

        result = run_chatd(server.data_dir, "verify")
        assert result.returncode == 1, result.stdout + result.stderr
        broken = [line for line in result.stderr.splitlines() if line.startswith("BROKEN")]
        assert len(broken) == 3, result.stderr
        assert any(f"attachment {middle['id']}" in b and "first bad chunk 20" in b for b in broken)
        assert any(f"attachment {first['id']}" in b and "first bad chunk 0" in b for b in broken)
        assert any(f"attachment {cut['id']}" in b and "chunk 31" in b for b in broken), broken
    finally:
        if not stopped:
            await admin.close()
            stop_server(server)


# ----------------------------------------------------------------------------- pure helpers


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("bytes=0-9", (0, 10)),
        ("bytes=5-", (5, 10)),
        ("bytes=-3", (7, 10)),
        ("bytes=-30", (0, 10)),
        ("bytes=2-99", (2, 10)),
        (" bytes = 2 - 4 ", (2, 5)),
        ("bytes=10-", UNSATISFIABLE),
        ("bytes=-0", UNSATISFIABLE),
        ("bytes=3-1", None),
        ("bytes=0-1,3-4", None),
        ("items=0-1", None),
        ("bytes=+1-2", None),
        ("bytes=\u00b2-3", None),
        ("bytes=-", None),
        ("bytes=1", None),
    ],
)
def test_parse_range(header: str | None, expected: object) -> None:
    assert parse_range(header, 10) == expected
    assert parse_range("bytes=0-", 0) == UNSATISFIABLE


def test_file_name_header_and_disposition() -> None:
    assert file_name(None) == "attachment"
    assert file_name("compte%20rendu%20%C3%A9t%C3%A9.pdf") == "compte rendu été.pdf"
    assert file_name("été.pdf".encode().decode("latin-1")) == "été.pdf"  # raw UTF-8 bytes
    with pytest.raises(ValidationError):
        file_name("%FF.pdf")
    disposition = content_disposition('a"b;\\c «d».pdf')
    assert disposition == (
        "attachment; filename=\"a_b__c _d_.pdf\"; filename*=UTF-8''a%22b%3B%5Cc%20%C2%ABd%C2%BB.pdf"
    )
