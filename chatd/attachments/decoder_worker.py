"""The worker side of image decoding: one process, one image, then it exits.

The parent (:mod:`.decoding`) starts :func:`decode_one` in a fresh process with one end of
a duplex pipe.  The conversation, in order:

==========  ==================  ==========================================================
direction   message             meaning
==========  ==================  ==========================================================
→ parent    ``ImageHeader``     the declared size (header only, nothing decoded)
← parent    ``GO``              memory is reserved for it (:mod:`.budget`): decode
→ parent    ``ProcessedImage``  the re-encoded image and its thumbnail
→ parent    ``Refusal``         instead of either answer: the ClientError refusing the file
→ parent    ``Unexpected``      instead of either answer: a failure that is not the file's
                                refusal (its exception's type name only, never content)
==========  ==================  ==========================================================

Anything else — the pipe closed, the process gone (a crash in a decoder, the kernel's OOM
killer, a ``kill``) — is the parent's to notice.  The process exits when the conversation
ends or when the parent goes away (its end of the pipe closes), so it never outlives an
upload.  It holds nothing of the server: it is forked from the ``forkserver``, a fresh
interpreter, not from the server, so no key, token, socket or database handle is in it.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from chatd.attachments.images import ImageHeader, ImageLimits, probe_image, process_image
from chatd.attachments.kinds import FileKind
from chatd.core.errors import ChatdError, ClientError

GO = "go"


@dataclass(frozen=True, slots=True)
class Refusal:
    """A ClientError, as its class, message id and fields (exceptions lose their fields
    when pickled: rebuilt from these, the sentence is still translated at the edge)."""

    error: type[ClientError]
    template: str
    details: dict[str, Any]

    @classmethod
    def of(cls, exc: ClientError) -> Refusal:
        return cls(type(exc), exc.template, dict(exc.details))

    def rebuild(self) -> ClientError:
        return self.error(self.template, **self.details)


@dataclass(frozen=True, slots=True)
class Unexpected:
    kind: str  # the exception's type name


def decode_one(conn: Connection, path: str, kind: FileKind, limits: ImageLimits) -> None:
    """The worker's whole life (see the module docstring)."""
    # Ctrl-C in a terminal reaches the whole process group: the parent decides when we stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        header = _answer(lambda: probe_image(Path(path), kind, limits))
        conn.send(header)
        if not isinstance(header, ImageHeader) or conn.recv() != GO:
            return
        conn.send(_answer(lambda: process_image(Path(path), kind, limits)))
    except (EOFError, OSError):
        return  # the parent went away, or killed the conversation
    finally:
        conn.close()


def _answer(step: Any) -> Any:
    try:
        return step()
    except ClientError as exc:
        return Refusal.of(exc)
    except ChatdError as exc:
        return Unexpected(type(exc).__name__)
    except Exception as exc:  # MemoryError, a bug: the parent logs the type name
        return Unexpected(type(exc).__name__)
