"""The administrators' audit log: what an operator did, to what, and when — never content.

Every action that changes accounts, keys, the store's identity or what retention destroyed is
recorded as one :class:`AdminAction` in an append-only, hash-chained log (the store's
:class:`~chatd.store.contract.AdminAuditStore`; ``chatd audit`` shows it).  A record names:

* **who** — an :class:`Actor`: the operator's OS account for the ``chatd`` command, later an
  administrator's account (by user id);
* **what** — an :class:`ActionKind`, and its **target**: a user id, a master key id, a
  conversation id or the new epoch — ids only, never a login, a name or a password;
* **how many** — the counts that action has (sessions closed, data keys re-wrapped,
  attachments destroyed), fixed per action by :data:`ACTIONS`.

The rules are tables (one row per action: its target kind, its counts, its sentence), so a new
action is one row; the store and the command read them and decide nothing themselves.  A record
that breaks them raises :class:`ValueError`: a programming error, never a person's.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

from chatd.i18n import N_, Text


class ActorKind(StrEnum):
    OS_USER = "os_user"  # the operator's account on the machine running ``chatd``
    ACCOUNT = "account"  # an administrator's chatd account, by user id (later)


class ActionKind(StrEnum):
    USER_CREATED = "user_created"
    USER_DISABLED = "user_disabled"
    USER_ENABLED = "user_enabled"
    PASSWORD_RESET = "password_reset"  # noqa: S105 - an action's name, not a password
    KEY_ROTATED = "key_rotated"
    KEY_RETIRED = "key_retired"
    EPOCH_DECLARED = "epoch_declared"
    REWIND_DECLARED = "rewind_declared"
    CONVERSATION_SHREDDED = "conversation_shredded"


class TargetKind(StrEnum):
    USER = "user"
    KEY = "key"
    CONVERSATION = "conversation"
    EPOCH = "epoch"


@dataclass(frozen=True, slots=True)
class ActionRule:
    """What a record of one action holds, and how it is said."""

    target: TargetKind
    counts: tuple[str, ...]  # exactly these counts, each a whole number ≥ 0
    sentence: str  # fields: {target} and each count


ACTIONS: Mapping[ActionKind, ActionRule] = MappingProxyType(
    {
        ActionKind.USER_CREATED: ActionRule(TargetKind.USER, (), N_("account {target} created")),
        ActionKind.USER_DISABLED: ActionRule(TargetKind.USER, (), N_("account {target} disabled")),
        ActionKind.USER_ENABLED: ActionRule(TargetKind.USER, (), N_("account {target} enabled")),
        ActionKind.PASSWORD_RESET: ActionRule(
            TargetKind.USER,
            ("sessions_closed",),
            N_("one-time password given to account {target} (sessions closed: {sessions_closed})"),
        ),
        ActionKind.KEY_ROTATED: ActionRule(
            TargetKind.KEY,
            ("data_keys",),
            N_("master key {target} made active (data keys re-wrapped: {data_keys})"),
        ),
        ActionKind.KEY_RETIRED: ActionRule(TargetKind.KEY, (), N_("master key {target} retired")),
        ActionKind.EPOCH_DECLARED: ActionRule(
            TargetKind.EPOCH, (), N_("new store epoch {target} declared")
        ),
        ActionKind.REWIND_DECLARED: ActionRule(
            TargetKind.EPOCH,
            ("departures",),
            N_(
                "restore of an older database declared, new store epoch {target} (chains behind"
                " the last checkpoint: {departures})"
            ),
        ),
        ActionKind.CONVERSATION_SHREDDED: ActionRule(
            TargetKind.CONVERSATION,
            ("attachments",),
            N_(
                "conversation {target} shredded by retention (attachments destroyed: {attachments})"
            ),
        ),
    }
)

MAX_NAME_CHARS = 64  # an actor's name or a target id; both are identifiers, never prose


def _check_identifier(what: str, value: str) -> None:
    if not 1 <= len(value) <= MAX_NAME_CHARS or not value.isprintable() or value != value.strip():
        raise ValueError(f"{what} must be 1 to {MAX_NAME_CHARS} printable characters")


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acted: an OS account's name, or an account's user id (as decimal digits)."""

    kind: ActorKind
    name: str

    def __post_init__(self) -> None:
        _check_identifier("an actor's name", self.name)

    @classmethod
    def os_user(cls, name: str) -> Actor:
        return cls(ActorKind.OS_USER, name)

    def __str__(self) -> str:
        return f"{self.kind}:{self.name}"


@dataclass(frozen=True, slots=True)
class AdminAction:
    """One action as recorded.  The target and the counts may be left out while the store
    has yet to fill them in the change's transaction (a new account's id, a new epoch, the
    sessions a reset closed: :meth:`with_target`, :meth:`with_counts`); the store appends
    only a :meth:`complete` one."""

    actor: Actor
    kind: ActionKind
    target: str = ""
    counts: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        rule = ACTIONS[self.kind]
        if self.target:
            _check_identifier("a target", self.target)
        if not set(self.counts) <= set(rule.counts):
            raise ValueError(f"{self.kind} counts {rule.counts}, not {tuple(self.counts)}")
        for name, value in self.counts.items():
            if type(value) is not int or value < 0:
                raise ValueError(f"the count {name} must be a whole number >= 0")
        object.__setattr__(self, "counts", MappingProxyType(dict(sorted(self.counts.items()))))

    @property
    def target_kind(self) -> TargetKind:
        return ACTIONS[self.kind].target

    def with_target(self, target: str) -> AdminAction:
        return dataclasses.replace(self, target=target)

    def with_counts(self, **counts: int) -> AdminAction:
        return dataclasses.replace(self, counts={**self.counts, **counts})

    def complete(self) -> AdminAction:
        """Itself, once its target and every count are known (what the store appends)."""
        if not self.target:
            raise ValueError(f"{self.kind} has no target")
        if len(self.counts) != len(ACTIONS[self.kind].counts):
            raise ValueError(f"{self.kind} lacks a count")
        return self

    def said(self) -> Text:
        """The action as a sentence for the operator (``account 3 disabled``)."""
        return Text(ACTIONS[self.kind].sentence, {"target": self.target, **self.counts})


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """A recorded action: its place in the log (``seq`` 1, 2, 3 …), when it was recorded (ms
    since the Unix epoch), and its link in the hash chain."""

    seq: int
    at_ms: int
    action: AdminAction
    prev_hash: bytes
    hash: bytes


@dataclass(frozen=True, slots=True)
class AuditQuery:
    """Which entries to list: by time (``since_ms`` ≤ at < ``until_ms``), by kind, after a
    seq (paging), at most ``limit``, oldest first."""

    since_ms: int | None = None
    until_ms: int | None = None
    kinds: frozenset[ActionKind] = frozenset()  # empty: every kind
    after_seq: int = 0
    limit: int = 1000

    def __post_init__(self) -> None:
        if not 1 <= self.limit <= 1000:
            raise ValueError("limit must be 1 to 1000")

    def matches(self, entry: AuditEntry) -> bool:
        """The reference rule (what a backend's query must agree with)."""
        return (
            entry.seq > self.after_seq
            and (self.since_ms is None or entry.at_ms >= self.since_ms)
            and (self.until_ms is None or entry.at_ms < self.until_ms)
            and (not self.kinds or entry.action.kind in self.kinds)
        )
