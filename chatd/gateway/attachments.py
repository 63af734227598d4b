"""HTTP routes of attachments: upload, download, thumbnail (docs/protocol.md, Attachments).

==========================================  ======  ===========================================
route                                       method  what
==========================================  ======  ===========================================
``/v1/attachments``                         POST    streaming body → 201 the attachment (JSON)
``/v1/attachments/{id}``                    GET     the file; single ``Range`` → 206 / 416
``/v1/attachments/{id}/thumbnail``          GET     a JPEG of at most 320 px (images only)
==========================================  ======  ===========================================

All need ``Authorization: Bearer <token>``, accepted terms and no pending password change
(``password_change_required``).  Errors are the JSON ``{"code", "message"}`` of the other HTTP
routes.  Whatever a user may not see — unknown id, another conversation, a message after their
leave, someone else's unsent upload — is the same 404 ``attachment_not_found``, so ids cannot
be probed.

Downloads are served as files to save, never to render: ``Content-Disposition: attachment``,
``X-Content-Type-Options: nosniff``, a CSP that forbids everything (``default-src 'none';
sandbox``) and ``Cache-Control: private, no-store``.  The body is streamed chunk by chunk as each
is authenticated.  The size (last chunk) and the first piece are authenticated before the
headers are sent, so a file found damaged then gets a 500 ``integrity_error``; a chunk found
damaged later aborts the response (the connection is closed short of ``Content-Length``, so
no client can take the truncated body for the file) and is logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import urllib.parse
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, BinaryIO, Literal

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send

from chatd.attachments.blobstore import BlobStore
from chatd.attachments.spool import too_large
from chatd.core.accounts import Principal
from chatd.core.errors import (
    AttachmentArchived,
    AttachmentFileMissing,
    AttachmentNotFound,
    ChatdError,
    ClientError,
    IntegrityError,
    RateLimitedError,
    RequestTimeoutError,
    TermsNotAcceptedError,
    ValidationError,
)
from chatd.core.ids import parse_attachment_id
from chatd.core.records import AttachmentAccess, AttachmentInfo
from chatd.crypto.chunks import ChunkOpener
from chatd.gateway.context import Gateway
from chatd.gateway.http import (
    authenticated,
    cut_short,
    endpoint,
    error_response,
    request_language,
    stalling,
)
from chatd.gateway.internal_errors import log_internal
from chatd.i18n import N_, Text

log = logging.getLogger("chatd.gateway.attachments")

FILE_NAME_HEADER = "x-file-name"
MAX_FILE_NAME_HEADER = 2048
READ_CHUNKS = 16  # chunks decrypted per worker-thread hop (1 MiB with 64 KiB chunks)
LINGER_SECONDS = 2.0  # how long a refused upload's remaining body is read and dropped
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; sandbox",
    "Cache-Control": "private, no-store",
    "Referrer-Policy": "no-referrer",
}
_DIGITS = re.compile(r"[0-9]{1,18}")
Unsatisfiable = Literal["unsatisfiable"]
UNSATISFIABLE: Unsatisfiable = "unsatisfiable"


def attachment_routes() -> list[Route]:
    return [
        Route("/v1/attachments", endpoint(upload), methods=["POST"]),
        Route("/v1/attachments/{attachment_id}", endpoint(download), methods=["GET"]),
        Route("/v1/attachments/{attachment_id}/thumbnail", endpoint(thumbnail), methods=["GET"]),
    ]


async def _principal(request: Request, gateway: Gateway) -> Principal:
    principal = await authenticated(request, gateway)
    principal.require_usable()
    if not principal.terms_accepted:
        raise TermsNotAcceptedError()
    return principal


# ----------------------------------------------------------------------------- upload


def file_name(raw: str | None) -> str:
    """The ``X-File-Name`` header: UTF-8, percent-encoded (raw UTF-8 is tolerated)."""
    if raw is None or not raw.strip():
        return "attachment"
    if len(raw) > MAX_FILE_NAME_HEADER:
        raise ValidationError(N_("The file name is too long."), field=FILE_NAME_HEADER)
    try:
        text = raw.encode("latin-1").decode("utf-8")  # headers arrive as latin-1
        return urllib.parse.unquote(text, encoding="utf-8", errors="strict")
    except UnicodeError:
        raise ValidationError(
            N_("The file name is not valid (X-File-Name must be UTF-8, percent-encoded)."),
            field=FILE_NAME_HEADER,
        ) from None


def upload_body(info: AttachmentInfo) -> dict[str, Any]:
    return {**info.message_ref(), "kind": info.kind, "expires_at": info.expires_at}


async def upload(request: Request, gateway: Gateway) -> Response:
    service = gateway.attachments
    body = _Body(stalling(request))
    try:
        principal = await _principal(request, gateway)
        header = request.headers.get("content-length", "")
        declared = int(header) if _DIGITS.fullmatch(header) else None
        if declared is not None and declared > service.max_bytes:
            raise too_large(service.max_bytes)  # refused before reading any of it
        name = file_name(request.headers.get(FILE_NAME_HEADER))
        info = await service.upload(principal.user_id, body, name, declared_bytes=declared)
    except ClientDisconnect:
        log.info("an upload was abandoned by its client")
        return Response(status_code=400)  # nobody is listening any more
    except ChatdError as exc:
        if not isinstance(exc, ClientError):
            log_internal(request.url.path, exc)
        response = error_response(exc, request)
        if isinstance(exc, RateLimitedError) and "seconds" in exc.details:
            response.headers["Retry-After"] = str(exc.details["seconds"])
        if body.finished:
            return response
        if isinstance(exc, RequestTimeoutError):
            return cut_short(response)  # the client sends nothing more: no lingering
        if not body.started and request.headers.get("expect", "").lower() == "100-continue":
            # The client waits for "100 Continue" before sending: it will send nothing.
            response.headers["Connection"] = "close"
            return response
        return LingeringResponse(response, drain_bytes=service.max_bytes)
    return JSONResponse(upload_body(info), status_code=201)


class _Body:
    """The request body, remembering whether it was read to its end."""

    def __init__(self, stream: AsyncIterator[bytes]) -> None:
        self._stream = stream
        self.started = False
        self.finished = False

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._pieces()

    async def _pieces(self) -> AsyncIterator[bytes]:
        self.started = True
        async for piece in self._stream:
            yield piece
        self.finished = True


class LingeringResponse(Response):
    """An answer to an upload refused before its body was read to the end (too large, no
    session …): the answer is sent with ``Connection: close``, then what the client is still
    sending is read and dropped — until the body ends, ``drain_bytes`` more bytes, or
    :data:`LINGER_SECONDS` — before the response is completed and the connection closed.

    Closing a socket that still has unread data makes the kernel reset the connection, which
    can destroy the answer on its way; a client that sends its whole body before reading (most
    HTTP libraries) would then see a broken connection instead of the 413.  Reading on for a
    moment lets the answer arrive first; an endless upload is still cut.
    """

    def __init__(self, answer: Response, *, drain_bytes: int) -> None:
        kept = {
            name: value
            for name, value in answer.headers.items()
            if name not in ("content-length", "content-type")
        }
        super().__init__(answer.body, answer.status_code, kept, answer.media_type)
        self.headers["Connection"] = "close"
        self._drain_bytes = drain_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        await send({"type": "http.response.body", "body": self.body, "more_body": True})
        await _drain(receive, self._drain_bytes, LINGER_SECONDS)
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _drain(receive: Receive, max_bytes: int, seconds: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    drained = 0
    while drained <= max_bytes:
        try:
            message = await asyncio.wait_for(receive(), max(0.0, deadline - loop.time()))
        except TimeoutError:
            return
        if message["type"] != "http.request":
            return  # the client went away
        drained += len(message.get("body", b""))
        if not message.get("more_body", False):
            return


# ----------------------------------------------------------------------------- download


def parse_range(header: str | None, size: int) -> tuple[int, int] | Unsatisfiable | None:
    """``[start, stop)`` of a single ``bytes=`` range; None to serve the whole file (no
    header, or one we do not honour: other units, several ranges, bad syntax)."""
    if not header:
        return None
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, dash, last = spec.strip().partition("-")
    first, last = first.strip(), last.strip()
    if not dash or not all(_DIGITS.fullmatch(part) for part in (first, last) if part):
        return None
    if not first:  # the last N bytes
        if not last:
            return None
        count = int(last)
        if count == 0 or size == 0:
            return UNSATISFIABLE
        return max(0, size - count), size
    start = int(first)
    if last and int(last) < start:
        return None
    if start >= size:
        return UNSATISFIABLE
    return start, size if not last else min(int(last) + 1, size)


def content_disposition(name: str) -> str:
    fallback = "".join(ch if " " <= ch < "\x7f" and ch not in '"\\;' else "_" for ch in name)
    quoted = urllib.parse.quote(name, safe="")
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quoted}"


def _file_headers(info: AttachmentInfo, name: str, content_type: str) -> dict[str, str]:
    return {
        "Content-Type": content_type,
        "Content-Disposition": content_disposition(name),
        "ETag": f'"{info.wire_id}"',
        **SECURITY_HEADERS,
    }


async def _access(request: Request, gateway: Gateway, *, thumbnail: bool) -> AttachmentAccess:
    principal = await _principal(request, gateway)
    attachment_id = parse_attachment_id(request.path_params["attachment_id"])
    if attachment_id is None:
        raise AttachmentNotFound()  # the same answer as for an id that is not visible
    return await gateway.attachments.find(principal.user_id, attachment_id, thumbnail=thumbnail)


async def download(request: Request, gateway: Gateway) -> Response:
    try:
        access = await _access(request, gateway, thumbnail=False)
    except AttachmentArchived as exc:
        return error_response(exc, request)
    info = access.info
    headers = {**_file_headers(info, info.name, info.mime), "Accept-Ranges": "bytes"}
    wanted = parse_range(request.headers.get("range"), info.size)
    if_range = request.headers.get("if-range")
    if if_range is not None and if_range.strip() != headers["ETag"]:
        wanted = None
    if wanted == UNSATISFIABLE:
        response = JSONResponse(
            {
                "code": "range_not_satisfiable",
                "message": Text(N_("The range is outside the file.")).render(
                    request_language(request)
                ),
            },
            416,
            headers={**SECURITY_HEADERS, "Content-Range": f"bytes */{info.size}"},
        )
        return response
    start, stop = (0, info.size) if wanted is None else wanted
    try:
        reader = await asyncio.to_thread(
            BlobReader.open, gateway.attachments.blobs, info, access.dek
        )
    except IntegrityError as exc:
        return _integrity_failure(info, exc, request)
    try:
        first = await asyncio.to_thread(reader.read, start, stop)
    except IntegrityError as exc:
        await asyncio.to_thread(reader.close)
        return _integrity_failure(info, exc, request)
    headers["Content-Length"] = str(stop - start)
    status = 200
    if wanted is not None:
        status = 206
        headers["Content-Range"] = f"bytes {start}-{stop - 1}/{info.size}"
    return SealedFileResponse(status, headers, reader, start + len(first), stop, first)


async def thumbnail(request: Request, gateway: Gateway) -> Response:
    try:
        access = await _access(request, gateway, thumbnail=True)
    except AttachmentArchived as exc:
        return error_response(exc, request)
    assert access.thumbnail is not None
    name = access.info.name.rsplit(".", 1)[0] + ".thumbnail.jpg"
    return Response(access.thumbnail, 200, _file_headers(access.info, name, "image/jpeg"))


def _integrity_failure(info: AttachmentInfo, exc: IntegrityError, request: Request) -> Response:
    log.error("attachment %s failed its integrity check: %s", info.wire_id, exc.message)
    # The class's own sentence, not the exception's (which names server-side details).
    error = AttachmentFileMissing() if isinstance(exc, AttachmentFileMissing) else IntegrityError()
    message = error.message_in(request_language(request))
    return JSONResponse({"code": error.code, "message": message}, 500)


class BlobReader:
    """An open sealed file whose size is authenticated; reads plaintext ranges (blocking)."""

    def __init__(self, fp: BinaryIO, opener: ChunkOpener, attachment_id: int) -> None:
        self._fp = fp
        self._opener = opener
        self.attachment_id = attachment_id
        self.chunk_size = opener.header.chunk_size

    @classmethod
    def open(cls, blobs: BlobStore, info: AttachmentInfo, dek: bytes) -> BlobReader:
        path: Path = blobs.path(info.id)
        try:
            fp: BinaryIO = path.open("rb")
        except FileNotFoundError:
            raise AttachmentFileMissing(
                N_("The file of attachment {attachment} is missing."),
                attachment=info.wire_id,
                attachment_id=info.id,
            ) from None
        try:
            opener = ChunkOpener(fp, dek, info.id)
            if opener.size != info.size:  # opens (authenticates) the last chunk
                raise IntegrityError(
                    N_("The file of attachment {attachment} holds {size} bytes, not {expected}."),
                    attachment=info.wire_id,
                    size=opener.size,
                    expected=info.size,
                )
        except BaseException:
            fp.close()
            raise
        return cls(fp, opener, info.id)

    def read(self, start: int, stop: int) -> bytes:
        """Plaintext from ``start`` up to the end of a run of chunks, at most to ``stop``."""
        end = min(stop, (start // self.chunk_size + READ_CHUNKS) * self.chunk_size)
        return b"".join(self._opener.read_range(start, end))

    def close(self) -> None:
        self._fp.close()


class SealedFileResponse(Response):
    """Streams a :class:`BlobReader`; a chunk failing on the way aborts the response."""

    def __init__(
        self,
        status_code: int,
        headers: dict[str, str],
        reader: BlobReader,
        position: int,
        stop: int,
        first: bytes,
    ) -> None:
        super().__init__(status_code=status_code, headers=headers)
        self._reader = reader
        self._position = position
        self._stop = stop
        self._first = first

    async def _pieces(self) -> AsyncIterator[bytes]:
        yield self._first
        position = self._position
        while position < self._stop:
            piece = await asyncio.to_thread(self._reader.read, position, self._stop)
            position += len(piece)
            yield piece

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        gone = asyncio.get_running_loop().create_task(_disconnected(receive))
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": self.status_code,
                    "headers": self.raw_headers,
                }
            )
            if scope["method"] != "HEAD":
                try:
                    async for piece in self._pieces():
                        if gone.done():
                            return  # the client went away: stop reading
                        await send({"type": "http.response.body", "body": piece, "more_body": True})
                except IntegrityError as exc:
                    log.error(
                        "attachment %016x failed its integrity check while being sent (%s);"
                        " the download was cut",
                        self._reader.attachment_id,
                        exc.message,
                    )
                    return  # never complete the response: the connection is closed short
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            gone.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await gone
            await asyncio.to_thread(self._reader.close)


async def _disconnected(receive: Receive) -> None:
    while True:
        message: Message = await receive()
        if message["type"] == "http.disconnect":
            return
