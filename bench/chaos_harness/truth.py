"""The ground truth: the final log, read through the store's export path.

After the run (server stopped), every event of every conversation is read in ``(conv, seq)``
order with :meth:`~chatd.store.contract.LogStore.export_events`, the operator's read path
(no visibility filter, seals opened with the key file), through the same wiring as ``chatd``
itself: the harness then runs unchanged on any backend the settings select.  This is what the
checker calls *the log*: it decides what was lost, duplicated or leaked.  It is not read
through the protocol because a user's protocol reads are limited to their 200-message window
(``archived`` beyond it) — the protocol is checked separately, by the final fresh reads.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from chatd.config import Settings
from chatd.wiring import open_store

from .history import marker_of

EXPORT_PAGE = 1000


@dataclass(frozen=True, slots=True)
class LogEvent:
    conv: int
    seq: int
    kind: str
    sender: int
    cmid: str | None = None  # message: the marker of its text
    subject: int | None = None  # joined/left: the user named
    members: tuple[int, ...] = ()  # created: every member, creator included


async def read_log(environ: Mapping[str, str]) -> list[LogEvent]:
    """Every event of every conversation, opened, in ``(conv, seq)`` order, from the store
    that the server's ``CHATD_*`` settings ``environ`` select."""
    events: list[LogEvent] = []
    async with open_store(Settings.from_env(environ)) as store:
        after = (0, 0)
        while page := await store.export_events(after, EXPORT_PAGE):
            events.extend(from_payload(e.conv_id, e.seq, e.kind, e.sender, e.payload) for e in page)
            after = (page[-1].conv_id, page[-1].seq)
    return events


def from_payload(
    conv: int, seq: int, kind: str, sender: int, payload: dict[str, object]
) -> LogEvent:
    """The fields the checker compares, from an event's opened payload (or a push)."""
    subject = payload.get("user")
    members = payload.get("members")
    return LogEvent(
        conv,
        seq,
        kind,
        sender,
        cmid=marker_of(payload.get("text")) if kind == "message" else None,
        subject=subject if isinstance(subject, int) else None,
        members=tuple(m for m in members if isinstance(m, int))
        if isinstance(members, list)
        else (),
    )
