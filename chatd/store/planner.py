"""Deciding one group-commit batch of conversation operations, in memory (backend-neutral).

:class:`BatchPlanner` turns a list of operations into the rows of one transaction: it decides
each operation with the pure rules (:func:`chatd.core.conversations.decide`, and the claim
rules of :mod:`chatd.core.claims`) against its cached conversation state, gives the resulting
events their seqs, seals and chains them.  There is no SQL here: a backend reads what the
planner needs first (idempotency keys, active users, conversations not in the cache, the
attachments referred to) and writes the resulting :class:`Plan` in one transaction.

The cache (:class:`ConvCache` per conversation) is what makes batching cheap: after the first
load a conversation's last seq, last hash, members and sealers are known without a query.  It
is only right under the **single-appender assumption** stated by
:class:`chatd.store.contract.LogStore`: one appender per database, whose cache

* is updated only by plans, and dropped entirely when a plan fails to commit;
* is dropped after every exclusive job that may touch conversations (shredding, re-keying);
* never sees another process append; the one change another process may make (shredding by
  ``chatd retention run``) must be refused by the database itself, which fails the batch,
  drops the cache and makes the next attempt reload the shredded state.

A backend with several appenders (PostgreSQL behind two nodes) cannot keep this cache as it is:
it must re-read each conversation's head under a row lock in the transaction that appends.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Set
from dataclasses import dataclass, field
from typing import Any

import msgpack

from chatd.core.claims import Claimable, attach_to_drafts, note_claims
from chatd.core.conversations import (
    ConversationState,
    CreateConversation,
    Operation,
    apply_membership,
    decide,
)
from chatd.core.errors import ChatdError, IntegrityError
from chatd.core.events import Event, EventKind
from chatd.core.ids import ConvId, Seq, UserId
from chatd.core.records import AppendResult
from chatd.crypto.chain import GENESIS, link_hash
from chatd.crypto.envelope import KeyScope, Sealer, event_binding
from chatd.crypto.keyring import KeyRing
from chatd.i18n import N_
from chatd.store.data_keys import CONV_SCOPE, CONV_STATE_DOMAIN, EVENTS_DOMAIN, DataKeys

UNTRUSTED_KEY = N_(
    "The record of this operation fails its integrity check; an administrator must run"
    " chatd verify."
)
IdemKey = tuple[int, int, str]  # (scope_conv, sender, client_msg_id); scope 0 = creations
IdemValue = tuple[int, int, int]  # (conv_id, first_seq, last_seq)
EventRow = tuple[int, int, str, int, int, bytes, bytes, bytes]
_pack = msgpack.Packer().pack  # one packer reused: packb() builds a new one per call


@dataclass(slots=True)
class ConvCache:
    """A conversation's state as of the last plan (committed, or in flight)."""

    state: ConversationState
    last_seq: int
    last_hash: bytes
    last_message_seq: int
    events: Sealer | None  # None once shredded
    names: Sealer | None


@dataclass(slots=True)
class Plan:
    """The rows of one batch, and each operation's outcome once they commit."""

    events: list[EventRow] = field(default_factory=list)
    idem: list[tuple[int, int, str, int, int, int]] = field(default_factory=list)
    keys: dict[IdemKey, IdemValue] = field(default_factory=dict)
    new_convs: dict[int, int] = field(default_factory=dict)  # conv -> created_at
    touched: dict[int, tuple[int, bytes | None]] = field(default_factory=dict)  # ts, sealed name
    data_keys: list[tuple[str, int, int, str, bytes, int]] = field(default_factory=list)
    closes: list[tuple[int, int, int]] = field(default_factory=list)  # left_seq, conv, user
    new_open: dict[tuple[int, int], int] = field(default_factory=dict)  # (conv, user) -> joined
    new_closed: list[tuple[int, int, int, int]] = field(default_factory=list)
    outcomes: list[AppendResult | ChatdError] = field(default_factory=list)
    # Final state of each touched conversation, captured when the plan is complete.
    heads: dict[int, tuple[int, bytes, int]] = field(default_factory=dict)
    claims: dict[int, tuple[int, int]] = field(default_factory=dict)  # attachment -> conv, seq
    # The KEKs in use when planned: a backend that authenticates rows (membership rows, an
    # attachment's reference) derives its MAC keys from them (chatd.crypto.row_macs).
    ring: KeyRing | None = None


class BatchPlanner:
    def __init__(self, data_keys: DataKeys, cache_size: int) -> None:
        self._keys = data_keys
        self._cache_size = cache_size
        self.convs: dict[int, ConvCache] = {}
        self.next_conv_id = 0  # 0 = not loaded yet
        # Ids handed out by the database (a sequence shared by several appenders): used
        # before next_conv_id, which only a single appender may count on.
        self.reserved_ids: list[int] = []
        self.generation = 0  # bumped by every reset: a plan made before one is void

    @property
    def keys(self) -> DataKeys:
        return self._keys

    def reset(self, failed_new_convs: Iterable[int] = ()) -> None:
        """Forget everything: a plan built on this state did not commit."""
        for conv_id in failed_new_convs:
            self._keys.forget(CONV_SCOPE, conv_id)
        self.convs.clear()
        self.next_conv_id = 0
        self.reserved_ids.clear()
        self.generation += 1

    def missing(self, ops: Iterable[Operation]) -> set[int]:
        return {op.conv_id for op in ops if op.conv_id and op.conv_id not in self.convs}

    def evict(self, keep: Set[int]) -> None:
        excess = len(self.convs) - self._cache_size
        if excess > 0:
            for conv_id in [c for c in self.convs if c not in keep][:excess]:
                del self.convs[conv_id]

    def plan(
        self,
        ops: list[Operation],
        known: dict[IdemKey, IdemValue],
        active_users: Set[int],
        now: int,
        attachments: Mapping[int, Claimable] | None = None,
        untrusted: Set[IdemKey] = frozenset(),
    ) -> Plan:
        """``untrusted``: keys whose recorded result fails its integrity check; their
        operations are refused (neither answered from a row that may lie nor appended
        again)."""
        plan = Plan(ring=self._keys.ring)
        for op in ops:
            key: IdemKey = (op.conv_id, op.sender, op.client_msg_id)
            if key in untrusted:
                plan.outcomes.append(IntegrityError(UNTRUSTED_KEY))
                continue
            seen = plan.keys.get(key) or known.get(key)
            if seen is not None:
                plan.outcomes.append(AppendResult(seen[0], seen[1], seen[2], True, ()))
                continue
            conv = self.convs.get(op.conv_id) if op.conv_id else None
            try:
                drafts = decide(conv.state if conv else None, op, active_users)
                drafts = attach_to_drafts(drafts, op.sender, attachments or {}, plan.claims, now)
            except ChatdError as exc:
                plan.outcomes.append(exc)
                continue
            if isinstance(op, CreateConversation):
                conv = self._new_conv(now, plan)
            assert conv is not None
            events = tuple(
                [self._append(conv, d.kind, d.sender, d.payload, now, plan) for d in drafts]
            )
            note_claims(events, plan.claims)
            conv_id, first, last = conv.state.conv_id, events[0].seq, events[-1].seq
            plan.keys[key] = (conv_id, first, last)
            plan.idem.append((op.conv_id, op.sender, op.client_msg_id, conv_id, first, last))
            plan.outcomes.append(AppendResult(conv_id, first, last, False, events))
        for touched in plan.touched:
            c = self.convs[touched]
            plan.heads[touched] = (c.last_seq, c.last_hash, c.last_message_seq)
        return plan

    def _new_conv(self, now: int, plan: Plan) -> ConvCache:
        if self.reserved_ids:
            conv_id = ConvId(self.reserved_ids.pop(0))
        else:
            conv_id = ConvId(self.next_conv_id)
            self.next_conv_id += 1
        scope = KeyScope(CONV_SCOPE, conv_id, 1)
        self._keys.forget(CONV_SCOPE, conv_id)  # in case a failed plan had used this id
        wrapped = self._keys.create(scope)
        plan.data_keys.append((CONV_SCOPE, conv_id, 1, wrapped.kek_id, wrapped.blob, now))
        plan.new_convs[conv_id] = now
        conv = ConvCache(
            state=ConversationState(conv_id),
            last_seq=0,
            last_hash=GENESIS,
            last_message_seq=0,
            events=self._keys.sealer(CONV_SCOPE, conv_id, 1, EVENTS_DOMAIN, conv_id),
            names=self._keys.sealer(CONV_SCOPE, conv_id, 1, CONV_STATE_DOMAIN, conv_id),
        )
        self.convs[conv_id] = conv
        return conv

    def _append(
        self,
        conv: ConvCache,
        kind: EventKind,
        sender: UserId,
        payload: dict[str, Any],
        now: int,
        plan: Plan,
    ) -> Event:
        sealer, names = conv.events, conv.names
        assert sealer is not None and names is not None  # decide() refuses shredded ones
        conv_id = conv.state.conv_id
        seq = Seq(conv.last_seq + 1)
        ciphertext = sealer.seal(seq, kind, _pack(payload), event_binding(sender, now))
        prev = conv.last_hash
        digest = link_hash(prev, conv_id, seq, kind, ciphertext)
        plan.events.append((conv_id, seq, kind, sender, now, ciphertext, prev, digest))
        conv.last_seq, conv.last_hash = seq, digest
        if kind is EventKind.MESSAGE:
            conv.last_message_seq = seq
            touched = plan.touched.get(conv_id)
            plan.touched[conv_id] = (now, None if touched is None else touched[1])
            return Event(conv_id, seq, kind, sender, now, payload, digest, prev)
        name = plan.touched[conv_id][1] if conv_id in plan.touched else None
        if kind is EventKind.CREATED or kind is EventKind.RENAMED:
            name = names.seal(0, "name", _pack(payload["name"]))
        if kind is EventKind.CREATED:
            for user in payload["members"]:
                plan.new_open[(conv_id, user)] = seq
        elif kind is EventKind.JOINED:
            plan.new_open[(conv_id, payload["user"])] = seq
        elif kind is EventKind.LEFT:
            user = payload["user"]
            joined = plan.new_open.pop((conv_id, user), None)
            if joined is None:
                plan.closes.append((seq + 1, conv_id, user))
            else:
                plan.new_closed.append((conv_id, user, joined, seq + 1))
        plan.touched[conv_id] = (now, name)
        conv.state = apply_membership(conv.state, kind, payload)
        return Event(conv_id, seq, kind, sender, now, payload, digest, prev)
