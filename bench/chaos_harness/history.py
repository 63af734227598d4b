"""The history: every record a simulated client makes, with a monotonic timestamp.

As in Jepsen, an operation is recorded when it is *invoked* and again for each outcome of an
attempt: ``ok`` (an ack: conv and first seq), ``fail`` (an error answer: nothing was recorded
for that attempt) or ``info`` (no answer — timeout or disconnect: indeterminate, it may or may
not have been applied).  A client retries an indeterminate or retryable operation with the
same ``client_msg_id`` until it gets an answer, so one ``client_msg_id`` may have several
outcome records.

What clients *see* is recorded too: every ``event`` push (conv, seq, kind, the
``client_msg_id`` marker of a message's text, the user a ``joined``/``left`` names), every
``archived`` marker, and the ``sync`` that starts each session (the positions the client
claimed to hold).  A session is one WebSocket connection; session ids are unique in a run.

All records are plain frozen dataclasses; the history can be written as JSON lines for a
post-mortem (``python -m bench.chaos --history FILE``).
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

OpType = Literal["invoke", "ok", "fail", "info"]
OpKind = Literal["send", "create", "add", "leave"]

MARKER_OPEN = "["
MARKER_CLOSE = "]"


def message_text(cmid: str, size: int) -> str:
    """A message text that carries its ``client_msg_id`` (how the log is matched to acks)."""
    head = f"{MARKER_OPEN}{cmid}{MARKER_CLOSE} "
    return head + "x" * max(1, size - len(head))


def marker_of(text: object) -> str | None:
    """The ``client_msg_id`` a harness message text carries, or None."""
    if not isinstance(text, str) or not text.startswith(MARKER_OPEN):
        return None
    end = text.find(MARKER_CLOSE)
    return text[1:end] if end > 1 else None


@dataclass(frozen=True, slots=True)
class Op:
    """One step of a mutation: invoke, or the outcome of one attempt."""

    t: float
    process: int  # the simulated client
    user: int
    type: OpType
    f: OpKind
    cmid: str
    conv: int | None  # None for an invoked create (the ack tells the conversation)
    seq: int | None = None  # ok: the acked first seq
    target: int | None = None  # add: the user added; create: unused
    code: str | None = None  # fail: the error code; info: why indeterminate
    duplicate: bool = False  # ok: the server said it had seen the client_msg_id


@dataclass(frozen=True, slots=True)
class Recv:
    """An ``event`` push received by a session."""

    t: float
    process: int
    user: int
    session: int
    conv: int
    seq: int
    kind: str
    cmid: str | None  # the marker of a message's text
    subject: int | None  # the user a joined/left event names


@dataclass(frozen=True, slots=True)
class Archived:
    """An ``archived`` push: events before ``window_start`` will not be served."""

    t: float
    process: int
    user: int
    session: int
    conv: int
    window_start: int


@dataclass(frozen=True, slots=True)
class SyncSent:
    """The ``sync`` that starts a session, with the positions the client claimed."""

    t: float
    process: int
    user: int
    session: int
    positions: tuple[tuple[int, int], ...]
    final: bool = False  # a fresh reader of the final state (no positions, must get all)


@dataclass(frozen=True, slots=True)
class SyncOk:
    t: float
    process: int
    user: int
    session: int


@dataclass(frozen=True, slots=True)
class SessionEnd:
    t: float
    process: int
    user: int
    session: int
    code: int | None  # the close code seen (1006: dropped), None if closed by us


@dataclass(frozen=True, slots=True)
class Fault:
    """A nemesis action (for the report and the post-mortem)."""

    t: float
    kind: str  # kill9, restart, drop, slow, storm
    detail: str = ""


Record = Op | Recv | Archived | SyncSent | SyncOk | SessionEnd | Fault


@dataclass
class History:
    """Append-only; one event loop writes it, the checker reads it after the run."""

    ops: list[Op] = field(default_factory=list)
    recvs: list[Recv] = field(default_factory=list)
    archived: list[Archived] = field(default_factory=list)
    syncs: list[SyncSent] = field(default_factory=list)
    sync_oks: list[SyncOk] = field(default_factory=list)
    ends: list[SessionEnd] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    window: int = 200  # hello.limits.window, as announced by the server
    _t0: float = field(default_factory=time.monotonic)
    _last: float = -1.0

    def now(self) -> float:
        """Seconds since the history began, strictly increasing: records made one after
        the other (an ``archived`` marker, then the window) keep their order when sorted."""
        t = time.monotonic() - self._t0
        if t <= self._last:
            t = math.nextafter(self._last, math.inf)
        self._last = t
        return t

    def add(self, record: Record) -> None:
        match record:
            case Op():
                self.ops.append(record)
            case Recv():
                self.recvs.append(record)
            case Archived():
                self.archived.append(record)
            case SyncSent():
                self.syncs.append(record)
            case SyncOk():
                self.sync_oks.append(record)
            case SessionEnd():
                self.ends.append(record)
            case Fault():
                self.faults.append(record)

    def records(self) -> list[Record]:
        every: list[Record] = [
            *self.ops,
            *self.recvs,
            *self.archived,
            *self.syncs,
            *self.sync_oks,
            *self.ends,
            *self.faults,
        ]
        every.sort(key=lambda r: r.t)
        return every

    def dump(self, path: Path) -> None:
        """Write the history as JSON lines, in time order."""
        with path.open("w") as out:
            for record in self.records():
                row = {"record": type(record).__name__, **dataclasses.asdict(record)}
                out.write(json.dumps(row) + "\n")
