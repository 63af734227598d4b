"""The ground truth: the final log read from the SQLite file with the key file.

After the run (server stopped), every event row is read in ``(conv, seq)`` order and its seal
opened with the conversation's data key, the way ``chatd verify`` does it (the key file
unwraps the data keys through :mod:`chatd.store.data_keys`).  This is what the checker calls
*the log*: it decides what was lost, duplicated or leaked.  It is read directly rather than
through the protocol because a user's protocol reads are limited to their 200-message window
(``archived`` beyond it) — the protocol is checked separately, by the final fresh reads.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

import msgpack

from chatd.crypto.envelope import KeyScope, WrappedKey, event_binding, sealed_key_version
from chatd.crypto.keyring import load_key_file
from chatd.store.data_keys import CONV_SCOPE, EVENTS_DOMAIN, DataKeys

from .history import marker_of


@dataclass(frozen=True, slots=True)
class LogEvent:
    conv: int
    seq: int
    kind: str
    sender: int
    cmid: str | None = None  # message: the marker of its text
    subject: int | None = None  # joined/left: the user named
    members: tuple[int, ...] = ()  # created: every member, creator included


def read_log(database: Path, key_file: Path) -> list[LogEvent]:
    """Every event of every conversation, opened, in ``(conv, seq)`` order."""
    keys = DataKeys(load_key_file(key_file))
    conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        for conv_id, version, kek_id, blob in conn.execute(
            "SELECT scope_id, version, kek_id, wrapped FROM data_keys"
            " WHERE scope = ? AND destroyed_at IS NULL",
            (CONV_SCOPE,),
        ):
            keys.load(KeyScope(CONV_SCOPE, conv_id, version), WrappedKey(kek_id, blob))
        events: list[LogEvent] = []
        rows = conn.execute(
            "SELECT conv_id, seq, kind, sender, ts, ciphertext FROM events ORDER BY conv_id, seq"
        )
        for conv_id, seq, kind, sender, ts, ciphertext in rows:
            sealer = keys.sealer(
                CONV_SCOPE, conv_id, sealed_key_version(ciphertext), EVENTS_DOMAIN, conv_id
            )
            payload = msgpack.unpackb(sealer.open(seq, kind, ciphertext, event_binding(sender, ts)))
            events.append(from_payload(conv_id, seq, kind, sender, payload))
        return events
    finally:
        conn.close()


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
