"""Checking a checkpoint log, and a database against it, as plain code (no I/O).

:func:`audit_records` replays a log from its first line: every record must follow the one
before it (``n`` + 1, ``prev`` = the hash of the line before), its root and size must be those
of the heads replayed so far, and its MAC must verify.  Only the last record's MAC *must*
be checked, since it vouches for every line before it through ``prev``; older records are
checked too when the key they name is still in the key file.

:func:`departures` says where a database no longer extends a map of heads: a chain that
vanished, one that is shorter than checkpointed, one whose event at the checkpointed seq is
another (a fork).  Its inputs are what the database answers, read by the store.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from chatd.core.checkpoints import (
    ADMIN_AUDIT_CHAIN,
    NO_PREVIOUS,
    Checkpoint,
    Head,
    HeadMap,
    RecordKind,
    chain_conversation,
    line_hash,
)
from chatd.i18n import N_, Text

KeyFor = Callable[[str], bytes | None]  # a record's kid → its checkpoint key, None if unknown


@dataclass(frozen=True, slots=True)
class RawLine:
    """A line of the log as the file layer read it: its record, or why it is not one."""

    raw: bytes  # without its newline
    record: Checkpoint | None  # None: the line is not a record
    error: str | None = None  # why, in English (for the operator's report)
    offset: int = 0  # where the line starts in the file


@dataclass
class LogAudit:
    heads: HeadMap = field(default_factory=HeadMap)
    last: Checkpoint | None = None
    problems: list[Text] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def audit_records(
    lines: Sequence[RawLine],
    key_for: KeyFor,
    *,
    from_base: bool = False,
    after: LogAudit | None = None,
) -> LogAudit:
    """Replay ``lines``.  ``from_base``: they start at a base whose predecessors are not
    given (a server's start reads only the tail), so its ``prev`` and ``n`` are taken as
    they are.  ``after``: they continue a replay already done (whose map is copied, not
    changed)."""
    audit = LogAudit()
    prev_hash, expected_n = NO_PREVIOUS, 1
    if after is not None and after.last is not None:
        audit.heads, audit.last = after.heads.copy(), after.last
        prev_hash, expected_n = line_hash(after.last.line()), after.last.n + 1
    for number, line in enumerate(lines, start=1):
        record = line.record
        if record is None:
            audit.problems.append(
                Text(
                    N_("checkpoint log: line {line} is not a record ({reason})"),
                    {"line": number, "reason": line.error or ""},
                )
            )
            return audit  # nothing after an unreadable line can be placed
        first = number == 1 and from_base
        if not first and (record.n != expected_n or record.prev != prev_hash):
            audit.problems.append(
                Text(
                    N_("checkpoint log: record {n} does not follow the record before it"),
                    {"n": record.n},
                )
            )
            return audit
        if first and record.kind is RecordKind.DELTA:
            audit.problems.append(
                Text(N_("checkpoint log: record {n} should be a base"), {"n": record.n})
            )
            return audit
        audit.heads.apply(record)
        if record.size != len(audit.heads.heads) or record.root != audit.heads.root:
            audit.problems.append(
                Text(
                    N_("checkpoint log: record {n} does not match the heads before it"),
                    {"n": record.n},
                )
            )
            return audit
        key = key_for(record.kid)
        if key is not None and not record.mac_ok(key):
            audit.problems.append(
                Text(
                    N_("checkpoint log: record {n} has a wrong MAC (forged or edited)"),
                    {"n": record.n},
                )
            )
            return audit
        audit.last = record
        prev_hash, expected_n = line_hash(line.raw), record.n + 1
    last = audit.last
    if last is not None and key_for(last.kid) is None:
        audit.problems.append(
            Text(
                N_(
                    "checkpoint log: the last record ({n}) is signed with key {kid},"
                    " which is not in the key file"
                ),
                {"n": last.n, "kid": last.kid},
            )
        )
    return audit


@dataclass(frozen=True, slots=True)
class CheckpointState:
    """What ``chatd serve`` and ``chatd verify`` need to know about the log at a glance."""

    last: Checkpoint | None
    problems: tuple[Text, ...]  # the log cannot be trusted, or is missing


class DepartureKind(StrEnum):
    VANISHED = "vanished"
    SHORTER = "shorter"
    FORKED = "forked"


@dataclass(frozen=True, slots=True)
class Departure:
    """A chain of the database that does not extend the checkpoint ``n``."""

    chain: str
    n: int
    held: Head
    kind: DepartureKind
    found_seq: int | None  # the database's last seq of the chain (None: it has no such chain)

    @property
    def conv_id(self) -> int:
        return chain_conversation(self.chain) or 0

    def text(self) -> Text:
        params: dict[str, object] = {
            "n": self.n,
            "seq": self.held.seq,
            "found": self.found_seq or 0,
        }
        conv = chain_conversation(self.chain)
        if conv is not None:
            params["conv"] = conv
            msgid = {
                DepartureKind.VANISHED: N_(
                    "conversation {conv} vanished: checkpoint {n} has it at seq {seq}"
                ),
                DepartureKind.SHORTER: N_(
                    "conversation {conv} ends at seq {found}, before checkpoint {n} (seq {seq}):"
                    " events were removed"
                ),
                DepartureKind.FORKED: N_(
                    "conversation {conv} forked: its event {seq} is not the one checkpoint"
                    " {n} recorded"
                ),
            }[self.kind]
        elif self.chain == ADMIN_AUDIT_CHAIN:
            msgid = {
                DepartureKind.VANISHED: N_(
                    "the admin audit log is empty: checkpoint {n} has it at record {seq}"
                ),
                DepartureKind.SHORTER: N_(
                    "the admin audit log ends at record {found}, before checkpoint {n}"
                    " (record {seq}): records were removed"
                ),
                DepartureKind.FORKED: N_(
                    "the admin audit log forked: its record {seq} is not the one checkpoint"
                    " {n} recorded"
                ),
            }[self.kind]
        else:
            params["chain"] = self.chain
            msgid = N_("the chain {chain} departs from checkpoint {n} at seq {seq}")
        return Text(msgid, params)


def departures(
    checkpoint: int,
    heads: Mapping[str, Head],
    hashes_at: Mapping[str, bytes],
    db_heads: Mapping[str, int],
) -> list[Departure]:
    """Where the database departs from ``heads`` (checkpoint ``checkpoint``):
    ``hashes_at[chain]`` is the database's hash at the checkpointed seq of the chain (absent:
    no such event), ``db_heads[chain]`` its last seq (absent: no such chain)."""
    found: list[Departure] = []
    for chain, head in heads.items():
        at = hashes_at.get(chain)
        if at == head.hash:
            continue
        last = db_heads.get(chain)
        if at is not None:
            kind = DepartureKind.FORKED
        elif last is None:
            kind = DepartureKind.VANISHED
        else:
            kind = DepartureKind.SHORTER if last < head.seq else DepartureKind.FORKED
        found.append(Departure(chain, checkpoint, head, kind, last))
    return found
