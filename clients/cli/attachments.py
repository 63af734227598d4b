"""Attachments over HTTP (``docs/protocol.md`` §14): upload a file, download one, name it.

Files never travel in WebSocket frames: ``send --attach`` uploads each file with
``POST /v1/attachments`` and then sends a message that names the ids; ``get`` downloads with
``GET /v1/attachments/{id}`` (or ``/thumbnail``).  Both stream between the disk and the socket
in chunks — a file is never held whole in memory — with the standard library's ``urllib``,
like :mod:`clients.cli.auth`.  A download goes to a temporary file in the target directory and
gets its name only once its byte count matched: a short body is a failed download, never a file.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import unicodedata
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from clients.cli import i18n
from clients.cli.auth import TIMEOUT, _http_error, not_chatd
from clients.cli.errors import CliError, NetworkError, UsageError
from clients.cli.i18n import _, ngettext
from clients.cli.visible import visible

CHUNK = 64 * 1024
MAX_NAME_CHARS = 200
USUAL_LIMIT = 10 * 1024 * 1024  # the server's default max_attachment_bytes
# What people call the accepted types (the server decides the type from the content): names
# of formats, the same in every language; an image is said "{format} image" (type_name).
FORMATS = {
    "application/pdf": "PDF",
    "application/msword": "Word",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "Word",
    "application/vnd.ms-excel": "Excel",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "Excel",
    "image/jpeg": "JPEG",
    "image/png": "PNG",
    "image/gif": "GIF",
    "image/webp": "WebP",
    "image/heic": "HEIC",
}

Progress = Callable[[int], None]  # bytes done so far


def type_name(mime: object) -> str:
    """``PDF``, ``JPEG image``, the MIME type of a format without a name, or ``file``."""
    if not mime:
        return _("file")
    name = FORMATS.get(str(mime))
    if name is None:
        return visible(mime)
    return _("{format} image", format=name) if str(mime).startswith("image/") else name


def human_size(size: object) -> str:
    """``532 bytes``, ``48.2 kB``, ``1.2 MB`` (decimal units, as file managers show them);
    ``48,2 ko`` in French."""
    if not isinstance(size, int):
        return _("? bytes")
    if size < 1000:
        return ngettext("{n} byte", "{n} bytes", size)
    if size < 1000**2:
        return _("{size} kB", size=i18n.decimal(size / 1000, 1))
    if size < 1000**3:
        return _("{size} MB", size=i18n.decimal(size / 1000**2, 1))
    return _("{size} GB", size=i18n.decimal(size / 1000**3, 1))


def label(attachment: object) -> str:
    """How a message shows one attachment: ``[attachment: name — PDF, 48.2 kB]``.

    Plain text rather than a 📎: an emoji is two columns wide in some terminals and one or a
    box in others, which breaks the alignment of the lines under a message.
    """
    if not isinstance(attachment, dict):
        return _("[attachment]")
    name = clean_name(str(attachment.get("name") or "")) or _("(no name)")
    return _(
        "[attachment: {name} — {type}, {size}]",
        name=name,
        type=type_name(attachment.get("mime")),
        size=human_size(attachment.get("size")),
    )


# ----------------------------------------------------------------------------- names


_BIDI = {"Cc", "Cf", "Co", "Cs", "Cn", "Zl", "Zp"}  # controls, format (bidi), private, unassigned


def clean_name(name: str) -> str:
    """A server-provided name made safe to show and to save: no path, no control or
    bidirectional characters, no leading dot, at most 200 characters; may be empty."""
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(c for c in name if unicodedata.category(c) not in _BIDI)
    name = name.strip().lstrip(".").strip()
    if len(name) > MAX_NAME_CHARS:
        stem, dot, ext = name.rpartition(".")
        if dot and 0 < len(ext) <= 10:
            name = stem[: MAX_NAME_CHARS - len(ext) - 1] + "." + ext
        else:
            name = name[:MAX_NAME_CHARS]
    return name


def free_path(directory: Path, name: str) -> Path:
    """``name`` in ``directory`` if free, else ``name (1).ext``, ``name (2).ext`` …"""
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem:
        stem, ext = name, ""
    suffix = f".{ext}" if ext else ""
    n = 0
    while True:
        candidate = directory / (f"{stem}{suffix}" if n == 0 else f"{stem} ({n}){suffix}")
        if not os.path.lexists(candidate):
            return candidate
        n += 1


# ----------------------------------------------------------------------------- HTTP


def _request(
    server: str, method: str, path: str, token: str, headers: dict[str, str], data: Any = None
) -> urllib.request.Request:
    headers = {
        "User-Agent": "chatd-cli",
        "Authorization": f"Bearer {token}",
        "Accept-Language": i18n.header(),
        **headers,
    }
    return urllib.request.Request(server + path, data=data, method=method, headers=headers)  # noqa: S310 - http(s) only: normalise_server


class _Counting:
    """A file whose ``read`` reports progress: what ``http.client`` streams the body from."""

    def __init__(self, file: IO[bytes], progress: Progress | None) -> None:
        self._file = file
        self._progress = progress
        self.done = 0

    def read(self, size: int = CHUNK) -> bytes:
        data = self._file.read(CHUNK if size is None or size < 0 else size)
        self.done += len(data)
        if self._progress is not None:
            self._progress(self.done)
        return data


def upload(
    server: str, token: str, path: Path, progress: Progress | None = None, timeout: float = TIMEOUT
) -> dict[str, Any]:
    """Upload one file; the server's answer (``id``, ``name``, ``mime``, ``size`` …)."""
    try:
        size = path.stat().st_size
        file = path.open("rb")
    except OSError as exc:
        raise UsageError(
            _("Cannot read {path}: {reason}.", path=str(path), reason=exc.strerror or exc)
        ) from None
    headers = {
        "Content-Type": "application/octet-stream",
        "Content-Length": str(size),
        "X-File-Name": urllib.parse.quote(path.name, safe=""),
        "Accept": "application/json",
    }
    with file:
        request = _request(
            server, "POST", "/v1/attachments", token, headers, _Counting(file, progress)
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
                answer = json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as exc:
            error = _http_error(exc)
            raise type(error)(
                _("{file}: {message}", file=path.name, message=error.message),
                code=error.code,
                details=error.details,
            ) from None
        except OSError as exc:
            reason = getattr(exc, "reason", exc)
            said = _(
                "Cannot upload {file} to {server}: {reason}.",
                file=path.name,
                server=server,
                reason=reason,
            )
            if size > USUAL_LIMIT:
                hint = _(
                    "It is {size}: servers usually refuse files over 10 MiB.",
                    size=human_size(size),
                )
                said = f"{said} {hint}"
            raise NetworkError(said) from None
        except ValueError:
            raise not_chatd(server) from None
    if not isinstance(answer, dict) or not isinstance(answer.get("id"), str):
        raise not_chatd(server)
    return answer


def download(
    server: str,
    token: str,
    attachment: dict[str, Any],
    directory: Path,
    *,
    thumbnail: bool = False,
    timeout: float = TIMEOUT,
) -> Path:
    """Download one attachment into ``directory`` under its cleaned name, never over an
    existing file; the path written.  The byte count must match (``size`` for the file)."""
    ident = str(attachment.get("id", ""))
    if not ident.isalnum():
        raise CliError(_("The server sent an attachment without a valid id."))
    name = clean_name(str(attachment.get("name") or "")) or f"attachment-{ident}"
    route = f"/v1/attachments/{ident}"
    if thumbnail:
        stem = name.rpartition(".")[0] or name
        name, route = f"{stem}.thumbnail.jpg", route + "/thumbnail"
    expected = None if thumbnail else attachment.get("size")
    request = _request(server, "GET", route, token, {"Accept": "*/*"})
    directory = directory.resolve()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            length = response.headers.get("Content-Length")
            if expected is None and length is not None and length.isdigit():
                expected = int(length)
            fd, tmp_name = tempfile.mkstemp(prefix=".chatd-", suffix=".part", dir=directory)
            tmp = Path(tmp_name)
            try:
                with os.fdopen(fd, "wb") as out:
                    got = 0
                    while chunk := response.read(CHUNK):
                        out.write(chunk)
                        got += len(chunk)
                if expected is not None and got != expected:
                    raise NetworkError(
                        _(
                            "The download of {file} stopped after {got} of {expected} bytes;"
                            " nothing was saved. Try again.",
                            file=name,
                            got=got,
                            expected=expected,
                        )
                    )
                return _place(tmp, directory, name)
            finally:
                tmp.unlink(missing_ok=True)
    except urllib.error.HTTPError as exc:
        raise _http_error(exc) from None
    except CliError:
        raise
    except OSError as exc:
        if isinstance(exc, FileNotFoundError | PermissionError | IsADirectoryError):
            raise CliError(
                _(
                    "Cannot write to {directory}: {reason}.",
                    directory=str(directory),
                    reason=exc.strerror or exc,
                )
            ) from None
        reason = getattr(exc, "reason", exc)
        raise NetworkError(
            _(
                "Cannot download {file} from {server}: {reason}.",
                file=name,
                server=server,
                reason=reason,
            )
        ) from None


def _place(tmp: Path, directory: Path, name: str) -> Path:
    """Give the finished file its name: ``os.link`` never replaces an existing file, so a
    file that appears meanwhile makes us take the next free name."""
    while True:
        target = free_path(directory, name)
        if target.resolve().parent != directory:  # cannot happen after clean_name: a guard
            raise CliError(
                _(
                    "Refusing to write {file} outside {directory}.",
                    file=repr(name),
                    directory=str(directory),
                )
            )
        try:
            os.link(tmp, target)
        except FileExistsError:
            continue
        return target


class ProgressBar:
    """``name  [#######.............]  35%  1.2 MB / 3.4 MB`` on stderr, redrawn in place."""

    WIDTH = 24

    def __init__(self, name: str, total: int, stream: IO[str] | None = None) -> None:
        self.name = name if len(name) <= 30 else name[:29] + "…"
        self.total = total
        self.stream = stream or sys.stderr
        self._last = -1

    def __call__(self, done: int) -> None:
        percent = 100 if self.total <= 0 else min(100, done * 100 // self.total)
        if percent == self._last:
            return
        self._last = percent
        filled = self.WIDTH * percent // 100
        bar = "#" * filled + "." * (self.WIDTH - filled)
        shown = _("{percent}%", percent=str(percent).rjust(3))
        self.stream.write(
            f"\r{self.name}  [{bar}] {shown}  {human_size(done)} / {human_size(self.total)}"
        )
        self.stream.flush()

    def finish(self) -> None:
        if self._last >= 0:
            self.stream.write("\n")
            self.stream.flush()
