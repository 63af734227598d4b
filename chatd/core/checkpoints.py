"""Signed checkpoints of every hash chain's head, as plain code (no I/O).

Why: a conversation's head (``last_seq``, ``last_hash``) lives in the database beside its
events, so whoever can write the file can cut a conversation's tail, or drop a whole
conversation, and rewrite the head to match; every chain would still verify.  A checkpoint
records all heads at once, MACed with a key derived from the key file, in a log kept outside
the database (:mod:`chatd.store.checkpoint_log`).  The database must then *extend* the latest
checkpoint: every chain it names exists, has at least its seq, and has its hash at that seq.
Certificate Transparency's signed tree heads (RFC 9162) are the model.

A chain is named by a string: ``conv:<id>`` for a conversation, ``admin_audit`` for the
administrators' audit log (the patient audit and feed chains will join them).

The log is a sequence of records, one JSON object per line:

* ``n``: 1, 2, 3…; ``prev``: SHA-256 of the previous line (64 zeros for the first), so the
  MAC of the last record vouches for every line before it;
* ``kind``: ``base`` (``heads`` lists every chain), ``delta`` (``heads`` lists the chains that
  moved since the previous record, and new chains, which are appended in that order) or
  ``rewind`` (a base that an operator declared after restoring an older database: the only
  record allowed to move a head back; it comes with a new store epoch);
* ``epoch``, ``schema`` (the database's migration version: a rewound schema is caught too),
  ``at`` (ms), ``size`` (how many chains) and ``root``: the Merkle root
  (:mod:`chatd.core.merkle`) over every chain's ``(name, seq, hash)`` in log order;
* ``kid`` and ``mac``: HMAC-SHA256 under the key derived from KEK ``kid`` over the canonical
  JSON of every other field.

Replaying the records from a base gives the map of heads at each record; its root must equal
the record's.  A base is written when the deltas since the last one outgrow the map, so that a
reader starts from the last base (:meth:`HeadMap.replay`) without reading the whole log.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import struct
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from chatd.core.merkle import IncrementalMerkle

CHECKPOINT_KEY_LABEL = b"checkpoint v1"
FORMAT = 1
NO_PREVIOUS = "0" * 64
ADMIN_AUDIT_CHAIN = "admin_audit"
_SEQ = struct.Struct(">q")


class RecordKind(StrEnum):
    BASE = "base"
    DELTA = "delta"
    REWIND = "rewind"


class BadRecord(ValueError):
    """A line of the checkpoint log that is not a well-formed record (its text says why,
    in English, for the operator's report)."""


def conversation_chain(conv_id: int) -> str:
    return f"conv:{conv_id}"


def chain_conversation(chain: str) -> int | None:
    """The conversation id of a ``conv:<id>`` chain, else None."""
    prefix, _, rest = chain.partition(":")
    return int(rest) if prefix == "conv" and rest.isdigit() else None


@dataclass(frozen=True, slots=True)
class Head:
    seq: int
    hash: bytes


def leaf(chain: str, head: Head) -> bytes:
    name = chain.encode()
    return _SEQ.pack(len(name)) + name + _SEQ.pack(head.seq) + head.hash


@dataclass(frozen=True, slots=True)
class Checkpoint:
    n: int
    kind: RecordKind
    epoch: str
    schema: int
    at_ms: int
    heads: tuple[tuple[str, Head], ...]
    size: int
    root: bytes
    prev: str
    kid: str = ""
    mac: str = ""

    def body(self) -> dict[str, Any]:
        return {
            "v": FORMAT,
            "n": self.n,
            "kind": str(self.kind),
            "epoch": self.epoch,
            "schema": self.schema,
            "at": self.at_ms,
            "heads": [[chain, head.seq, head.hash.hex()] for chain, head in self.heads],
            "size": self.size,
            "root": self.root.hex(),
            "prev": self.prev,
            "kid": self.kid,
        }

    def signed(self, kid: str, key: bytes) -> Checkpoint:
        unsigned = replace(self, kid=kid)
        return replace(unsigned, mac=_mac(key, unsigned.body()))

    def mac_ok(self, key: bytes) -> bool:
        expected = _mac(key, self.body()).encode()
        return hmac.compare_digest(self.mac.encode("utf-8", "surrogatepass"), expected)

    def line(self) -> bytes:
        """The record as one line of the log (without its newline)."""
        return _canonical({**self.body(), "mac": self.mac})


def _canonical(doc: Mapping[str, Any]) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def _mac(key: bytes, body: Mapping[str, Any]) -> str:
    return hmac.new(key, _canonical(body), hashlib.sha256).hexdigest()


def line_hash(line: bytes) -> str:
    return hashlib.sha256(line).hexdigest()


def _hex(value: object, size: int, what: str) -> bytes:
    if not isinstance(value, str) or len(value) != size * 2:
        raise BadRecord(f"{what} is not {size} bytes of hexadecimal")
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise BadRecord(f"{what} is not hexadecimal") from None


def _int(value: object, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise BadRecord(f"{what} is not a whole number")
    return value


def parse_record(line: bytes) -> Checkpoint:
    """A line of the log → its record; :class:`BadRecord` for anything else."""
    try:
        doc = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        raise BadRecord("not JSON") from None
    if not isinstance(doc, dict) or doc.get("v") != FORMAT:
        raise BadRecord("not a checkpoint record of format 1")
    try:
        kind = RecordKind(str(doc.get("kind")))
    except ValueError:
        raise BadRecord("unknown kind") from None
    raw_heads = doc.get("heads")
    if not isinstance(raw_heads, list):
        raise BadRecord("heads is not a list")
    heads = []
    for item in raw_heads:
        if not (isinstance(item, list) and len(item) == 3 and isinstance(item[0], str)):
            raise BadRecord("a head is not [chain, seq, hash]")
        heads.append((item[0], Head(_int(item[1], "a seq"), _hex(item[2], 32, "a hash"))))
    _hex(doc.get("prev"), 32, "prev")
    _hex(doc.get("mac"), 32, "mac")
    for name in ("epoch", "kid"):
        value = doc.get(name)
        if not (isinstance(value, str) and 1 <= len(value) <= 64 and value.isascii()):
            raise BadRecord(f"{name} is not an identifier")
    return Checkpoint(
        n=_int(doc.get("n"), "n"),
        kind=kind,
        epoch=doc["epoch"],
        schema=_int(doc.get("schema"), "schema"),
        at_ms=_int(doc.get("at"), "at"),
        heads=tuple(heads),
        size=_int(doc.get("size"), "size"),
        root=_hex(doc.get("root"), 32, "root"),
        prev=doc["prev"],
        kid=doc["kid"],
        mac=doc["mac"],
    )


@dataclass
class HeadMap:
    """Every chain's head at one checkpoint, in log order, with the Merkle tree over them."""

    heads: dict[str, Head] = field(default_factory=dict)
    tree: IncrementalMerkle = field(default_factory=IncrementalMerkle)
    _index: dict[str, int] = field(default_factory=dict)

    @classmethod
    def of(cls, heads: Iterable[tuple[str, Head]]) -> HeadMap:
        ordered = dict(heads)
        return cls(
            ordered,
            IncrementalMerkle(leaf(chain, head) for chain, head in ordered.items()),
            {chain: i for i, chain in enumerate(ordered)},
        )

    def copy(self) -> HeadMap:
        return HeadMap(dict(self.heads), self.tree.copy(), dict(self._index))

    @property
    def root(self) -> bytes:
        return self.tree.root

    def put(self, chain: str, head: Head) -> None:
        index = self._index.setdefault(chain, len(self._index))
        self.heads[chain] = head
        self.tree.set(index, leaf(chain, head))

    def moved(self, current: Mapping[str, Head]) -> list[tuple[str, Head]]:
        """The chains of ``current`` that are new or moved forward, in a stable order (known
        chains by name, then new ones by name, appended in that order).  A head that is not
        ahead of the one held is left out: a checkpoint never records a step back (only a
        rewind does).  Costs what ``current`` holds, not what the map holds."""
        known, new = [], []
        for chain, head in sorted(current.items()):
            held = self.heads.get(chain)
            if held is None:
                new.append((chain, head))
            elif head.seq > held.seq:
                known.append((chain, head))
        return known + new

    def advance(self, moved: Sequence[tuple[str, Head]]) -> Callable[[], None]:
        """Put ``moved`` in place (a few Merkle paths, no copy of the map); return what
        undoes it, for an append that failed (a rebuild: rare, and never on the hot path)."""
        before = {chain: self.heads.get(chain) for chain, _ in moved}
        for chain, head in moved:
            self.put(chain, head)

        def undo() -> None:
            kept = {c: h for c, h in self.heads.items() if before.get(c, h) is not None}
            kept.update((c, h) for c, h in before.items() if h is not None)
            fresh = HeadMap.of(kept.items())
            self.heads, self.tree, self._index = fresh.heads, fresh.tree, fresh._index

        return undo

    def apply(self, record: Checkpoint) -> None:
        """Replay ``record`` onto this map (a base or a rewind starts from nothing)."""
        if record.kind is not RecordKind.DELTA:
            fresh = HeadMap.of(record.heads)
            self.heads, self.tree, self._index = fresh.heads, fresh.tree, fresh._index
            return
        for chain, head in record.heads:
            self.put(chain, head)
