"""The tamper cases of :mod:`.test_append_only`: what each role meets for each operation.

Mirrors the operations of SQLite's tamper tests (tests/store/test_tamper.py, test_row_macs.py,
test_contract_attachments.py, test_contract_audit.py), plus TRUNCATE, which PostgreSQL has and
which fires no row trigger, and the updates the store does make (so no rule refuses too much).
"""

from __future__ import annotations

from dataclasses import dataclass

from tests.store.postgres.conftest import (
    ALICE,
    BOB,
    FAR,
    H1,
    H2,
    LIVE,
    LIVE_TOKEN,
    REVOKED_TOKEN,
    SENT,
    SHREDDED,
    SPARE,
    UNSENT,
    ZERO,
)

TRIGGER = "trigger"  # IntegrityConstraintViolationError with the rule's sentence
PRIVILEGE = "privilege"  # InsufficientPrivilegeError: refused before any trigger
OK = "ok"

NEW_EVENT = (
    "INSERT INTO events (conv_id, seq, kind, sender, ts, ciphertext, prev_hash, hash)"
    " VALUES ($1, $2, 'message', $3, 9, '\\x00', '\\x00', '\\x00')"
)
NEW_AUDIT = "INSERT INTO admin_audit VALUES ($1, 3, 'os', 'root', 'x', 'user', '1', '{}', $2, $3)"


@dataclass(frozen=True)
class Case:
    name: str
    sql: str
    params: tuple[object, ...]
    owner: str  # what the owner meets: TRIGGER or OK
    app: str  # what the application role meets: PRIVILEGE, TRIGGER or OK
    says: str = ""  # a piece of the trigger's sentence


EVENTS = "events are append-only"
MEMBERS = "membership history is append-only"
CLOSED = "a membership interval is closed once"
DESTROYED = "a destroyed data key stays destroyed"
NOT_DELETED = "data keys are destroyed, never deleted"
TOKEN = "a login token is only ever revoked"
IDEMPOTENT = "idempotency keys are append-only"
AUDIT = "the admin audit log is append-only"
AT_END = "an admin audit record links to the last one"

CASES: list[Case] = [
    # events: neither changed nor removed
    Case(
        "rewrite an event",
        "UPDATE events SET ciphertext = '\\x00' WHERE conv_id = $1 AND seq = 2",
        (LIVE,),
        TRIGGER,
        PRIVILEGE,
        EVENTS,
    ),
    Case(
        "relabel events",
        "UPDATE events SET kind = 'renamed' WHERE conv_id = $1",
        (LIVE,),
        TRIGGER,
        PRIVILEGE,
        EVENTS,
    ),
    Case(
        "delete the last event",
        "DELETE FROM events WHERE conv_id = $1 AND seq = 3",
        (LIVE,),
        TRIGGER,
        PRIVILEGE,
        EVENTS,
    ),
    Case("delete every event", "DELETE FROM events", (), TRIGGER, PRIVILEGE, EVENTS),
    Case("truncate events", "TRUNCATE events", (), TRIGGER, PRIVILEGE, EVENTS),
    Case(
        "upsert over an event",
        NEW_EVENT.replace(
            "'\\x00')",
            "'\\x00') ON CONFLICT (conv_id, seq) DO UPDATE SET ciphertext = EXCLUDED.ciphertext",
        ),
        (LIVE, 3, ALICE),
        TRIGGER,
        PRIVILEGE,
        EVENTS,
    ),
    Case(
        "append to a shredded conversation",
        NEW_EVENT,
        (SHREDDED, 3, ALICE),
        TRIGGER,
        TRIGGER,
        "conversation shredded",
    ),
    Case("append to a live conversation", NEW_EVENT, (LIVE, 4, ALICE), OK, OK),
    # memberships: closed once, never reopened or deleted
    Case(
        "delete a membership",
        "DELETE FROM memberships WHERE conv_id = $1 AND user_id = $2",
        (LIVE, BOB),
        TRIGGER,
        PRIVILEGE,
        MEMBERS,
    ),
    Case("truncate memberships", "TRUNCATE memberships", (), TRIGGER, PRIVILEGE, MEMBERS),
    Case(
        "reopen a closed interval",
        "UPDATE memberships SET left_seq = NULL WHERE conv_id = $1",
        (SHREDDED,),
        TRIGGER,
        TRIGGER,
        CLOSED,
    ),
    Case(
        "move a closed interval's end",
        "UPDATE memberships SET left_seq = 9, mac = '\\x01' WHERE conv_id = $1",
        (SHREDDED,),
        TRIGGER,
        TRIGGER,
        CLOSED,
    ),
    Case(
        "move an interval's start",
        "UPDATE memberships SET joined_seq = 2, mac = '\\x01' WHERE conv_id = $1",
        (LIVE,),
        TRIGGER,
        PRIVILEGE,
        CLOSED,
    ),
    Case(
        "close an open interval",
        "UPDATE memberships SET left_seq = 4, mac = '\\x01' WHERE conv_id = $1 AND user_id = $2",
        (LIVE, BOB),
        OK,
        OK,
    ),
    Case(
        "re-MAC a closed interval",
        "UPDATE memberships SET mac = '\\x01' WHERE conv_id = $1",
        (SHREDDED,),
        OK,
        OK,
    ),
    # data keys: destroyed, never deleted, never given a value again
    Case(
        "resurrect a destroyed key",
        "UPDATE data_keys SET kek_id = 'kek1', wrapped = '\\x0a', destroyed_at = NULL"
        " WHERE scope = 'conv' AND scope_id = $1",
        (SHREDDED,),
        TRIGGER,
        TRIGGER,
        DESTROYED,
    ),
    Case(
        "re-date a destruction",
        "UPDATE data_keys SET destroyed_at = 1 WHERE scope = 'conv' AND scope_id = $1",
        (SHREDDED,),
        TRIGGER,
        TRIGGER,
        DESTROYED,
    ),
    Case(
        "delete a destroyed key",
        "DELETE FROM data_keys WHERE scope_id = $1",
        (SHREDDED,),
        TRIGGER,
        PRIVILEGE,
        NOT_DELETED,
    ),
    Case(
        "delete a live key",
        "DELETE FROM data_keys WHERE scope_id = $1",
        (LIVE,),
        TRIGGER,
        PRIVILEGE,
        NOT_DELETED,
    ),
    Case("truncate data keys", "TRUNCATE data_keys", (), TRIGGER, PRIVILEGE, NOT_DELETED),
    Case(
        "destroy a live key",
        "UPDATE data_keys SET kek_id = NULL, wrapped = NULL, destroyed_at = 9"
        " WHERE scope = 'conv' AND scope_id = $1",
        (LIVE,),
        OK,
        OK,
    ),
    Case(
        "re-wrap a live key",
        "UPDATE data_keys SET kek_id = 'kek2', wrapped = '\\x0b'"
        " WHERE scope = 'conv' AND scope_id = $1",
        (LIVE,),
        OK,
        OK,
    ),
    # login tokens: only ever revoked (and seen while live)
    Case(
        "un-revoke a token",
        "UPDATE auth_tokens SET revoked_at = NULL WHERE token_hash = $1",
        (REVOKED_TOKEN,),
        TRIGGER,
        TRIGGER,
        TOKEN,
    ),
    Case(
        "un-revoke a token with a new MAC",
        "UPDATE auth_tokens SET revoked_at = NULL, mac = '\\x00' WHERE token_hash = $1",
        (REVOKED_TOKEN,),
        TRIGGER,
        TRIGGER,
        TOKEN,
    ),
    Case(
        "see a revoked token",
        "UPDATE auth_tokens SET last_seen_at = 5 WHERE token_hash = $1",
        (REVOKED_TOKEN,),
        TRIGGER,
        TRIGGER,
        TOKEN,
    ),
    Case(
        "extend tokens",
        "UPDATE auth_tokens SET expires_at = expires_at + 1",
        (),
        TRIGGER,
        PRIVILEGE,
        TOKEN,
    ),
    Case(
        "give a token to another user",
        "UPDATE auth_tokens SET user_id = $1 WHERE token_hash = $2",
        (BOB, LIVE_TOKEN),
        TRIGGER,
        PRIVILEGE,
        TOKEN,
    ),
    Case(
        "revoke a token",
        "UPDATE auth_tokens SET revoked_at = 7, mac = '\\x01' WHERE token_hash = $1",
        (LIVE_TOKEN,),
        OK,
        OK,
    ),
    Case(
        "see a live token",
        "UPDATE auth_tokens SET last_seen_at = 7 WHERE token_hash = $1",
        (LIVE_TOKEN,),
        OK,
        OK,
    ),
    Case(
        "re-MAC a revoked token",
        "UPDATE auth_tokens SET mac = '\\x01' WHERE token_hash = $1",
        (REVOKED_TOKEN,),
        OK,
        OK,
    ),
    # idempotency keys: only their MAC may change
    Case(
        "point a retry elsewhere",
        "UPDATE idempotency_keys SET first_seq = 99",
        (),
        TRIGGER,
        PRIVILEGE,
        IDEMPOTENT,
    ),
    Case(
        "rename a retry key",
        "UPDATE idempotency_keys SET client_msg_id = 'other' WHERE client_msg_id = 'k1'",
        (),
        TRIGGER,
        PRIVILEGE,
        IDEMPOTENT,
    ),
    Case("re-MAC a retry key", "UPDATE idempotency_keys SET mac = '\\x01'", (), OK, OK),
    # read markers: forward only
    Case(
        "move a read marker back",
        "UPDATE read_markers SET read_seq = 1 WHERE user_id = $1",
        (ALICE,),
        TRIGGER,
        TRIGGER,
        "a read marker never moves back",
    ),
    Case(
        "move a read marker forward",
        "INSERT INTO read_markers VALUES ($1, $2, 3, 3) ON CONFLICT (user_id, conv_id)"
        " DO UPDATE SET read_seq = EXCLUDED.read_seq, updated_at = EXCLUDED.updated_at",
        (ALICE, LIVE),
        OK,
        OK,
    ),
    # attachments: referenced once, by a message of the uploader; a sent one stays
    Case(
        "delete a sent attachment",
        "DELETE FROM attachments WHERE id = $1",
        (SENT,),
        TRIGGER,
        TRIGGER,
        "a sent attachment is never deleted",
    ),
    Case(
        "truncate attachments",
        "TRUNCATE attachments",
        (),
        TRIGGER,
        PRIVILEGE,
        "a sent attachment is never deleted",
    ),
    Case(
        "move a sent attachment",
        "UPDATE attachments SET seq = 3 WHERE id = $1",
        (SENT,),
        TRIGGER,
        TRIGGER,
        "an attachment is only ever referenced, once",
    ),
    Case(
        "unsend an attachment",
        "UPDATE attachments SET conv_id = NULL, seq = NULL WHERE id = $1",
        (SENT,),
        TRIGGER,
        TRIGGER,
        "only ever referenced, once",
    ),
    Case(
        "resize an attachment",
        "UPDATE attachments SET size = 1 WHERE id = $1",
        (UNSENT,),
        TRIGGER,
        PRIVILEGE,
        "only ever referenced, once",
    ),
    Case(
        "retype an attachment",
        "UPDATE attachments SET mime = 'text/html'",
        (),
        TRIGGER,
        PRIVILEGE,
        "only ever referenced, once",
    ),
    Case(
        "refer to it from another's message",
        "UPDATE attachments SET conv_id = $1, seq = 3 WHERE id = $2",
        (LIVE, UNSENT),
        TRIGGER,
        TRIGGER,
        "a message of its uploader",
    ),
    Case(
        "refer to it from a non-message",
        "UPDATE attachments SET conv_id = $1, seq = 1 WHERE id = $2",
        (LIVE, UNSENT),
        TRIGGER,
        TRIGGER,
        "a message of its uploader",
    ),
    Case(
        "refer to it from the uploader's message",
        "UPDATE attachments SET conv_id = $1, seq = 2, mac = '\\x01' WHERE id = $2",
        (LIVE, SPARE),
        OK,
        OK,
    ),
    Case("delete an unsent attachment", "DELETE FROM attachments WHERE id = $1", (UNSENT,), OK, OK),
    # the admin audit log: appended at its end only, never changed
    Case(
        "rewrite an audit record",
        "UPDATE admin_audit SET actor = 'someone else' WHERE seq = 2",
        (),
        TRIGGER,
        PRIVILEGE,
        AUDIT,
    ),
    Case(
        "delete an audit record",
        "DELETE FROM admin_audit WHERE seq = 2",
        (),
        TRIGGER,
        PRIVILEGE,
        AUDIT,
    ),
    Case("truncate the audit log", "TRUNCATE admin_audit", (), TRIGGER, PRIVILEGE, AUDIT),
    Case(
        "copy an audit record",
        "INSERT INTO admin_audit SELECT * FROM admin_audit WHERE seq = 1",
        (),
        TRIGGER,
        TRIGGER,
        AT_END,
    ),
    Case("append past the end", NEW_AUDIT, (4, H2, ZERO), TRIGGER, TRIGGER, AT_END),
    Case("append a fork", NEW_AUDIT, (3, H1, ZERO), TRIGGER, TRIGGER, AT_END),
    Case("append at the end", NEW_AUDIT, (3, H2, ZERO), OK, OK),
    # the epoch: replaced, never removed
    Case(
        "delete the epoch",
        "DELETE FROM store_epoch",
        (),
        TRIGGER,
        PRIVILEGE,
        "a database always has an epoch",
    ),
    Case(
        "truncate the epoch",
        "TRUNCATE store_epoch",
        (),
        TRIGGER,
        PRIVILEGE,
        "a database always has an epoch",
    ),
    Case(
        "declare a new epoch",
        "UPDATE store_epoch SET epoch = $1, declared_at = 9",
        ("ab" * 16,),
        OK,
        OK,
    ),
    Case("rewind the head feed", "UPDATE conversations SET head_version = 0", (), OK, PRIVILEGE),
    Case(
        "expire a login attempt", "DELETE FROM login_attempts WHERE started_at < $1", (FAR,), OK, OK
    ),
]
