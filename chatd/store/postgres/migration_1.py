"""PostgreSQL migration 1: the whole schema of SQLite's migrations 1-11, at once.

A fresh backend has nothing to upgrade, so its first migration is today's schema rather
than a replay of SQLite's history.  The tables, columns (in SQLite's order, so that an
export compares column by column), checks, indexes and the append-only triggers are those
of :mod:`chatd.store.sqlite.migrations` as they stand after migration 11, with these
translations:

* ``INTEGER`` → ``BIGINT`` (ids, seqs, times in ms), ``BLOB`` → ``BYTEA``, ``length`` of a
  blob → ``octet_length``; the 0/1 flags of ``users`` (``disabled``,
  ``must_change_password``) → ``BOOLEAN``: the row MAC encodes a bool as the integer it
  is (:func:`chatd.crypto.row_macs.encode`), so a row MACs the same on both backends.
* Ids that SQLite took from its rowid come from named sequences (``user_ids``,
  ``conversation_ids``, ``login_attempt_ids``): the planner reserves conversation ids
  with ``nextval`` before it seals (gaps are harmless; conversation ids were never dense),
  and explicit ids stay possible (an import keeps the ids it moves, and must then move
  the sequence past them with ``setval``: an explicit id does not advance it).
* ``conversations.head_version`` (new, the design's checkpoint feed): a trigger sets it from
  the sequence ``head_versions`` on every insert and update of a head, so every append of
  every node bumps it without the store having to remember.  A reader of
  ``WHERE head_version > $last`` must allow for a value taken by a transaction that commits
  after a larger one (sequences are not commit-ordered).
* Each trigger refuses with SQLite's sentence and SQLSTATE 23000
  (``integrity_constraint_violation``: asyncpg's ``IntegrityConstraintViolationError``, the
  counterpart of ``sqlite3.IntegrityError``).  Simple refusals are one shared function,
  ``chatd_refuse(sentence)``, under a ``WHEN`` clause that reads like SQLite's; those that
  need a query have a function of their own.
* What PostgreSQL adds to SQLite's rules: ``TRUNCATE`` fires no row trigger, so each
  table with a delete rule has a ``BEFORE TRUNCATE`` trigger too; ``events_refuse_shredded``
  reads the head ``FOR SHARE``, so an append and a concurrent shred are serialised (SQLite
  has one writer and needs no lock); ``store_epoch.epoch`` must be 32 lower-case hex digits.
* Trigger functions pin ``search_path`` (``pg_catalog, public, pg_temp``), so that a
  temporary table named ``conversations`` cannot stand in for the real one.

Never edit this migration once published: add the next number (:mod:`.migrations`).
"""

from __future__ import annotations

TABLES = r"""
CREATE SEQUENCE user_ids AS BIGINT;
CREATE TABLE users (
    id                    BIGINT PRIMARY KEY DEFAULT nextval('user_ids'),
    login                 TEXT NOT NULL UNIQUE,
    password_hash         TEXT NOT NULL,
    profile               BYTEA NOT NULL,       -- sealed: names, profession, structure, e-mail
    disabled              BOOLEAN NOT NULL DEFAULT FALSE,
    terms_version         TEXT,
    created_at            BIGINT NOT NULL,
    must_change_password  BOOLEAN NOT NULL DEFAULT FALSE,
    password_changed_at   BIGINT,
    language              TEXT CHECK (language IN ('fr', 'en')),
    mac                   BYTEA
);
ALTER SEQUENCE user_ids OWNED BY users.id;

CREATE SEQUENCE conversation_ids AS BIGINT;
CREATE SEQUENCE head_versions AS BIGINT;
CREATE TABLE conversations (
    id                BIGINT PRIMARY KEY DEFAULT nextval('conversation_ids'),
    created_at        BIGINT NOT NULL,
    last_seq          BIGINT NOT NULL,
    last_hash         BYTEA NOT NULL,
    last_event_at     BIGINT NOT NULL,
    last_message_seq  BIGINT NOT NULL DEFAULT 0,
    name              BYTEA NOT NULL,           -- sealed current name
    shredded_at       BIGINT,
    head_version      BIGINT NOT NULL           -- set by conversations_head_version
);
ALTER SEQUENCE conversation_ids OWNED BY conversations.id;
CREATE INDEX conversations_by_head_version ON conversations (head_version);

CREATE TABLE memberships (
    conv_id     BIGINT NOT NULL REFERENCES conversations(id),
    user_id     BIGINT NOT NULL REFERENCES users(id),
    joined_seq  BIGINT NOT NULL,
    left_seq    BIGINT,
    mac         BYTEA,
    PRIMARY KEY (conv_id, user_id, joined_seq),
    CHECK (left_seq IS NULL OR left_seq > joined_seq)
);
CREATE INDEX memberships_by_user ON memberships (user_id, conv_id);
CREATE UNIQUE INDEX memberships_open ON memberships (conv_id, user_id) WHERE left_seq IS NULL;

CREATE TABLE events (
    conv_id     BIGINT NOT NULL,
    seq         BIGINT NOT NULL,
    kind        TEXT NOT NULL,
    sender      BIGINT NOT NULL,
    ts          BIGINT NOT NULL,
    ciphertext  BYTEA NOT NULL,
    prev_hash   BYTEA NOT NULL,
    hash        BYTEA NOT NULL,
    PRIMARY KEY (conv_id, seq),
    CHECK (seq >= 1)
);
CREATE INDEX events_messages ON events (conv_id, seq) WHERE kind = 'message';
CREATE INDEX events_names ON events (conv_id, seq) WHERE kind IN ('created', 'renamed');

CREATE TABLE idempotency_keys (
    scope_conv     BIGINT NOT NULL,             -- 0 for conversation creations
    sender         BIGINT NOT NULL,
    client_msg_id  TEXT NOT NULL,
    conv_id        BIGINT NOT NULL,
    first_seq      BIGINT NOT NULL,
    last_seq       BIGINT NOT NULL,
    mac            BYTEA,
    PRIMARY KEY (scope_conv, sender, client_msg_id)
);

CREATE TABLE data_keys (
    scope         TEXT NOT NULL,                -- 'conv', 'directory', 'attachment', 'audit'
    scope_id      BIGINT NOT NULL,
    version       BIGINT NOT NULL,
    kek_id        TEXT,
    wrapped       BYTEA,                        -- NULL once destroyed (crypto-shredding)
    created_at    BIGINT NOT NULL,
    destroyed_at  BIGINT,
    PRIMARY KEY (scope, scope_id, version),
    CHECK ((wrapped IS NULL) = (destroyed_at IS NOT NULL))
);

CREATE TABLE auth_tokens (
    token_hash    BYTEA PRIMARY KEY,            -- SHA-256 of the token, never the token
    user_id       BIGINT NOT NULL REFERENCES users(id),
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL,
    revoked_at    BIGINT,
    device        TEXT CHECK (device IS NULL OR device ~ '^[A-Za-z0-9 ._-]{1,32}$'),
    last_seen_at  BIGINT,
    mac           BYTEA,
    CHECK (octet_length(token_hash) = 32),
    CHECK (expires_at > created_at)
);
CREATE INDEX auth_tokens_by_user ON auth_tokens (user_id) WHERE revoked_at IS NULL;
CREATE INDEX auth_tokens_by_expiry ON auth_tokens (expires_at);

CREATE TABLE read_markers (
    user_id     BIGINT NOT NULL REFERENCES users(id),
    conv_id     BIGINT NOT NULL REFERENCES conversations(id),
    read_seq    BIGINT NOT NULL CHECK (read_seq >= 0),
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (user_id, conv_id)
);

-- The file is written before the row; see SQLite's migration 3 for the whole story.
CREATE TABLE attachments (
    id          BIGINT PRIMARY KEY CHECK (id > 0),
    uploader    BIGINT NOT NULL REFERENCES users(id),
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    size        BIGINT NOT NULL CHECK (size >= 0),
    kind        TEXT NOT NULL,
    mime        TEXT NOT NULL,
    name        BYTEA NOT NULL,                 -- sealed under the attachment's data key
    width       BIGINT,
    height      BIGINT,
    thumbnail   BYTEA,                          -- sealed JPEG, images only
    conv_id     BIGINT REFERENCES conversations(id),
    seq         BIGINT,
    mac         BYTEA,
    CHECK ((conv_id IS NULL) = (seq IS NULL)),
    CHECK (expires_at > created_at)
);
CREATE INDEX attachments_by_message ON attachments (conv_id, seq) WHERE conv_id IS NOT NULL;
CREATE INDEX attachments_unsent ON attachments (expires_at) WHERE conv_id IS NULL;

CREATE TABLE store_epoch (
    id           BIGINT PRIMARY KEY CHECK (id = 1),
    epoch        TEXT NOT NULL CHECK (epoch ~ '^[0-9a-f]{32}$'),
    declared_at  BIGINT NOT NULL
);
-- 16 bytes from PostgreSQL's strong random source (gen_random_uuid), hashed to be uniform.
INSERT INTO store_epoch (id, epoch, declared_at) VALUES (
    1,
    left(encode(sha256(convert_to(gen_random_uuid()::text || gen_random_uuid()::text,
                                  'UTF8')), 'hex'), 32),
    (extract(epoch FROM clock_timestamp()) * 1000)::BIGINT
);

CREATE SEQUENCE login_attempt_ids AS BIGINT;
CREATE TABLE login_attempts (
    id           BIGINT PRIMARY KEY DEFAULT nextval('login_attempt_ids'),
    login_key    BYTEA NOT NULL CHECK (octet_length(login_key) = 16),
    address_key  BYTEA NOT NULL CHECK (octet_length(address_key) = 16),
    started_at   BIGINT NOT NULL,
    finished_at  BIGINT
);
ALTER SEQUENCE login_attempt_ids OWNED BY login_attempts.id;
CREATE INDEX login_attempts_by_login ON login_attempts (login_key, started_at);
CREATE INDEX login_attempts_by_address ON login_attempts (address_key, started_at);
CREATE INDEX login_attempts_by_start ON login_attempts (started_at);

CREATE TABLE live_sessions (
    id          TEXT PRIMARY KEY,               -- node.counter: unique across nodes
    node        TEXT NOT NULL,
    user_id     BIGINT NOT NULL REFERENCES users(id),
    token_hash  BYTEA NOT NULL,
    opened_at   BIGINT NOT NULL,
    seen_at     BIGINT NOT NULL
);
CREATE INDEX live_sessions_by_user ON live_sessions (user_id, seen_at);
CREATE INDEX live_sessions_by_node ON live_sessions (node);

CREATE TABLE admin_audit (
    seq          BIGINT PRIMARY KEY CHECK (seq >= 1),
    at           BIGINT NOT NULL,
    actor_kind   TEXT NOT NULL,
    actor        TEXT NOT NULL,
    action       TEXT NOT NULL,
    target_kind  TEXT NOT NULL,
    target       TEXT NOT NULL,
    counts       TEXT NOT NULL,
    prev_hash    BYTEA NOT NULL CHECK (octet_length(prev_hash) = 32),
    hash         BYTEA NOT NULL CHECK (octet_length(hash) = 32)
);
"""

# Functions first; each trigger below names the SQLite trigger it mirrors by its own name.
FUNCTIONS = r"""
CREATE FUNCTION chatd_refuse() RETURNS trigger LANGUAGE plpgsql
SET search_path = pg_catalog, public, pg_temp AS $$
BEGIN
    RAISE EXCEPTION USING MESSAGE = TG_ARGV[0], ERRCODE = 'integrity_constraint_violation';
END
$$;

CREATE FUNCTION conversations_head_version() RETURNS trigger LANGUAGE plpgsql
SET search_path = pg_catalog, public, pg_temp AS $$
BEGIN
    NEW.head_version := nextval('public.head_versions');
    RETURN NEW;
END
$$;

CREATE FUNCTION events_refuse_shredded() RETURNS trigger LANGUAGE plpgsql
SET search_path = pg_catalog, public, pg_temp AS $$
DECLARE
    shredded BIGINT;
BEGIN
    -- FOR SHARE: a shred not yet committed makes this wait, then see it.
    SELECT shredded_at INTO shredded FROM public.conversations WHERE id = NEW.conv_id
        FOR SHARE;
    IF shredded IS NOT NULL THEN
        RAISE EXCEPTION USING MESSAGE = 'conversation shredded',
            ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END
$$;

CREATE FUNCTION attachments_referenced_by_own_message() RETURNS trigger LANGUAGE plpgsql
SET search_path = pg_catalog, public, pg_temp AS $$
BEGIN
    IF NOT EXISTS (
        SELECT 1 FROM public.events e WHERE e.conv_id = NEW.conv_id AND e.seq = NEW.seq
        AND e.kind = 'message' AND e.sender = OLD.uploader AND e.ts < OLD.expires_at)
    THEN
        RAISE EXCEPTION USING
            MESSAGE = 'an attachment is referenced by a message of its uploader',
            ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END
$$;

CREATE FUNCTION admin_audit_append_at_end() RETURNS trigger LANGUAGE plpgsql
SET search_path = pg_catalog, public, pg_temp AS $$
BEGIN
    IF NEW.seq IS DISTINCT FROM (SELECT COALESCE(MAX(seq), 0) + 1 FROM public.admin_audit)
       OR NEW.prev_hash IS DISTINCT FROM COALESCE(
              (SELECT hash FROM public.admin_audit WHERE seq = NEW.seq - 1),
              decode(repeat('00', 32), 'hex'))
    THEN
        RAISE EXCEPTION USING MESSAGE = 'an admin audit record links to the last one',
            ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END
$$;
"""

TRIGGERS = r"""
CREATE TRIGGER conversations_head_version BEFORE INSERT OR UPDATE ON conversations
FOR EACH ROW EXECUTE FUNCTION conversations_head_version();

CREATE TRIGGER events_append_only_update BEFORE UPDATE ON events
FOR EACH ROW EXECUTE FUNCTION chatd_refuse('events are append-only');
CREATE TRIGGER events_append_only_delete BEFORE DELETE ON events
FOR EACH ROW EXECUTE FUNCTION chatd_refuse('events are append-only');
CREATE TRIGGER events_append_only_truncate BEFORE TRUNCATE ON events
FOR EACH STATEMENT EXECUTE FUNCTION chatd_refuse('events are append-only');
CREATE TRIGGER events_refuse_shredded BEFORE INSERT ON events
FOR EACH ROW EXECUTE FUNCTION events_refuse_shredded();

CREATE TRIGGER data_keys_no_delete BEFORE DELETE ON data_keys
FOR EACH ROW EXECUTE FUNCTION chatd_refuse('data keys are destroyed, never deleted');
CREATE TRIGGER data_keys_no_truncate BEFORE TRUNCATE ON data_keys
FOR EACH STATEMENT EXECUTE FUNCTION chatd_refuse('data keys are destroyed, never deleted');
CREATE TRIGGER data_keys_no_resurrection BEFORE UPDATE ON data_keys
FOR EACH ROW WHEN (OLD.destroyed_at IS NOT NULL)
EXECUTE FUNCTION chatd_refuse('a destroyed data key stays destroyed');

CREATE TRIGGER memberships_no_delete BEFORE DELETE ON memberships
FOR EACH ROW EXECUTE FUNCTION chatd_refuse('membership history is append-only');
CREATE TRIGGER memberships_no_truncate BEFORE TRUNCATE ON memberships
FOR EACH STATEMENT EXECUTE FUNCTION chatd_refuse('membership history is append-only');
CREATE TRIGGER memberships_close_once BEFORE UPDATE ON memberships
FOR EACH ROW WHEN (NEW.joined_seq IS DISTINCT FROM OLD.joined_seq
     OR NEW.user_id IS DISTINCT FROM OLD.user_id OR NEW.conv_id IS DISTINCT FROM OLD.conv_id
     OR (OLD.left_seq IS NOT NULL AND NEW.left_seq IS DISTINCT FROM OLD.left_seq))
EXECUTE FUNCTION chatd_refuse('a membership interval is closed once');

CREATE TRIGGER idempotency_keys_no_update BEFORE UPDATE ON idempotency_keys
FOR EACH ROW WHEN (NEW.scope_conv IS DISTINCT FROM OLD.scope_conv
     OR NEW.sender IS DISTINCT FROM OLD.sender
     OR NEW.client_msg_id IS DISTINCT FROM OLD.client_msg_id
     OR NEW.conv_id IS DISTINCT FROM OLD.conv_id
     OR NEW.first_seq IS DISTINCT FROM OLD.first_seq
     OR NEW.last_seq IS DISTINCT FROM OLD.last_seq)
EXECUTE FUNCTION chatd_refuse('idempotency keys are append-only');

CREATE TRIGGER read_markers_forward_only BEFORE UPDATE ON read_markers
FOR EACH ROW WHEN (NEW.read_seq < OLD.read_seq)
EXECUTE FUNCTION chatd_refuse('a read marker never moves back');

CREATE TRIGGER auth_tokens_revoke_once BEFORE UPDATE ON auth_tokens
FOR EACH ROW WHEN (NEW.token_hash IS DISTINCT FROM OLD.token_hash
     OR NEW.user_id IS DISTINCT FROM OLD.user_id
     OR NEW.expires_at IS DISTINCT FROM OLD.expires_at
     OR NEW.created_at IS DISTINCT FROM OLD.created_at
     OR NEW.device IS DISTINCT FROM OLD.device
     OR (OLD.revoked_at IS NOT NULL AND (NEW.revoked_at IS DISTINCT FROM OLD.revoked_at
         OR NEW.last_seen_at IS DISTINCT FROM OLD.last_seen_at)))
EXECUTE FUNCTION chatd_refuse('a login token is only ever revoked');

CREATE TRIGGER attachments_keep_sent BEFORE DELETE ON attachments
FOR EACH ROW WHEN (OLD.conv_id IS NOT NULL)
EXECUTE FUNCTION chatd_refuse('a sent attachment is never deleted');
CREATE TRIGGER attachments_keep_sent_truncate BEFORE TRUNCATE ON attachments
FOR EACH STATEMENT EXECUTE FUNCTION chatd_refuse('a sent attachment is never deleted');
CREATE TRIGGER attachments_reference_once BEFORE UPDATE ON attachments
FOR EACH ROW WHEN (NEW.id IS DISTINCT FROM OLD.id OR NEW.uploader IS DISTINCT FROM OLD.uploader
     OR NEW.created_at IS DISTINCT FROM OLD.created_at
     OR NEW.expires_at IS DISTINCT FROM OLD.expires_at
     OR NEW.size IS DISTINCT FROM OLD.size OR NEW.kind IS DISTINCT FROM OLD.kind
     OR NEW.mime IS DISTINCT FROM OLD.mime OR NEW.name IS DISTINCT FROM OLD.name
     OR NEW.width IS DISTINCT FROM OLD.width OR NEW.height IS DISTINCT FROM OLD.height
     OR NEW.thumbnail IS DISTINCT FROM OLD.thumbnail
     OR NOT ((NEW.conv_id IS NOT DISTINCT FROM OLD.conv_id
              AND NEW.seq IS NOT DISTINCT FROM OLD.seq)
             OR (OLD.conv_id IS NULL AND NEW.conv_id IS NOT NULL)))
EXECUTE FUNCTION chatd_refuse('an attachment is only ever referenced, once');
CREATE TRIGGER attachments_referenced_by_own_message BEFORE UPDATE OF conv_id, seq
ON attachments FOR EACH ROW EXECUTE FUNCTION attachments_referenced_by_own_message();

CREATE TRIGGER store_epoch_no_delete BEFORE DELETE ON store_epoch
FOR EACH ROW EXECUTE FUNCTION chatd_refuse('a database always has an epoch');
CREATE TRIGGER store_epoch_no_truncate BEFORE TRUNCATE ON store_epoch
FOR EACH STATEMENT EXECUTE FUNCTION chatd_refuse('a database always has an epoch');

CREATE TRIGGER admin_audit_no_update BEFORE UPDATE ON admin_audit
FOR EACH ROW EXECUTE FUNCTION chatd_refuse('the admin audit log is append-only');
CREATE TRIGGER admin_audit_no_delete BEFORE DELETE ON admin_audit
FOR EACH ROW EXECUTE FUNCTION chatd_refuse('the admin audit log is append-only');
CREATE TRIGGER admin_audit_no_truncate BEFORE TRUNCATE ON admin_audit
FOR EACH STATEMENT EXECUTE FUNCTION chatd_refuse('the admin audit log is append-only');
CREATE TRIGGER admin_audit_append_at_end BEFORE INSERT ON admin_audit
FOR EACH ROW EXECUTE FUNCTION admin_audit_append_at_end();
"""

SQL = TABLES + FUNCTIONS + TRIGGERS
