"""Numbered, described schema migrations for the SQLite store.

Each migration runs in its own named transaction together with the row that records it in
``schema_migrations``; a database whose recorded version is newer than this code knows is
refused rather than used.  Never edit a published migration: add the next number
(``chatd verify`` compares the schema with what these migrations create, :mod:`.schema_check`).

Design notes that live in the schema:

* ``events`` is append-only for real: triggers refuse UPDATE and DELETE, so even a bug (or an
  admin with the sqlite3 shell) cannot rewrite history.  Crypto-shredding does not touch events:
  it destroys the conversation's data key in ``data_keys``, which makes every copy of every
  event unreadable.
* ``data_keys`` rows may be re-wrapped (KEK rotation) and destroyed (shredding), never deleted,
  and a destroyed key can never be given a value again.
* ``memberships`` holds one row per interval ``[joined_seq, left_seq)``; ``left_seq`` is the seq
  *after* the ``left`` event, so a leaver still sees their own leave.  An interval may be closed
  once and never reopened or deleted; re-joining opens a new interval.
* Kind, sender and time are clear metadata; every personal or clinical value is a sealed blob.
* ``attachments`` (migration 3): the file is written before the row, the key is a
  ``data_keys`` row of scope ``'attachment'``; a row is referenced by a message once and then
  never deleted; size, type and pixel size are clear metadata, the name and thumbnail sealed.
* ``users.must_change_password`` (migration 4): set with a one-time password by an
  administrator, cleared when the user chooses their own; the hash and the flag always change
  together, in the transaction that also revokes the user's other tokens.
* ``store_epoch`` (migration 6): one row, the database's epoch — a random id made with the
  database (or by the migration, for an existing one) and replaced only by
  ``chatd store new-epoch``; it tells this database from a restored or replaced one.
* ``login_attempts`` (migration 7): the login throttle's state, so that it survives a restart
  and is shared by every node of one database.  A row is an attempt that counts (in flight
  or failed); its login and client address are keyed hashes, never the text typed (which may
  be a password typed into the login field).  Rows older than the window are deleted.
* ``auth_tokens.device`` and ``live_sessions`` (migration 8): a login's device is the family
  of its client's User-Agent, from a fixed vocabulary (never words a person typed, so it
  is kept in clear); ``live_sessions`` lists the live WebSocket connections of every node,
  refreshed by each node's heartbeat, which ``CHATD_SESSIONS_PER_USER`` counts.
* ``admin_audit`` (migration 9): the administrators' audit log (:mod:`chatd.core.audit`),
  append-only like ``events`` and hash-chained like a conversation, its seqs dense from 1;
  ids and counts only, never a login, a name or a password.
* ``mac`` of ``users``, ``auth_tokens``, ``attachments`` and ``memberships`` (migration 10):
  an HMAC over each row's security-relevant clear columns (:mod:`chatd.crypto.row_macs`)
  under a key derived from the key file, never stored here.  Its step in Python
  (:func:`chatd.store.sqlite.row_macs.backfill_txn`, :attr:`Migration.backfill`) MACs the rows
  that exist, in the migration's own transaction, in the open that applies it; a NULL
  ``mac`` after that is a problem for verify, never filled in later (that would launder a
  tampered row).  Someone who rewinds the schema (drops the columns and the record of
  migration 10) to have the rows re-MAC'd is caught by the checkpoint log, which records
  the schema version in every checkpoint.  The triggers that refused every other update
  (``attachments_reference_once``, ``memberships_close_once``, ``auth_tokens_revoke_once``)
  now also allow an update that changes only ``mac`` (backfill, rotation), and the updates
  they allowed before together with a new ``mac``.
* ``idempotency_keys.mac`` (migration 11): the same, for the row that tells a retry which
  operation its ``client_msg_id`` was and what it got; nothing else repeats the key, so an
  edited one would make a retry apply twice or answer another action as done.  Its trigger
  now allows an update of ``mac`` alone.
* ``upload_budgets`` (migration 12): the upload quota's state (:mod:`chatd.core.upload_quota`),
  so that it survives a restart and is shared by every node of one database: one row per
  user who uploaded lately, their two token buckets and when they are full again.  A user
  id and numbers, nothing personal; rows whose buckets are full again are deleted.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    sql: str
    # A step in Python after the SQL, in the same transaction, that needs the key file
    # (the ``backfill`` argument of :func:`chatd.store.sqlite.db.migrate`).
    backfill: bool = False


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "users, conversations, memberships, append-only event log, idempotency keys, data keys",
        """
        CREATE TABLE users (
            id              INTEGER PRIMARY KEY,
            login           TEXT NOT NULL UNIQUE,
            password_hash   TEXT NOT NULL,
            profile         BLOB NOT NULL,          -- sealed: names, profession, structure, e-mail
            disabled        INTEGER NOT NULL DEFAULT 0,
            terms_version   TEXT,
            created_at      INTEGER NOT NULL
        );

        CREATE TABLE conversations (
            id                INTEGER PRIMARY KEY,
            created_at        INTEGER NOT NULL,
            last_seq          INTEGER NOT NULL,
            last_hash         BLOB NOT NULL,
            last_event_at     INTEGER NOT NULL,
            last_message_seq  INTEGER NOT NULL DEFAULT 0,
            name              BLOB NOT NULL,         -- sealed current name
            shredded_at       INTEGER
        );

        CREATE TABLE memberships (
            conv_id     INTEGER NOT NULL REFERENCES conversations(id),
            user_id     INTEGER NOT NULL REFERENCES users(id),
            joined_seq  INTEGER NOT NULL,
            left_seq    INTEGER,
            PRIMARY KEY (conv_id, user_id, joined_seq),
            CHECK (left_seq IS NULL OR left_seq > joined_seq)
        ) WITHOUT ROWID;
        CREATE INDEX memberships_by_user ON memberships (user_id, conv_id);
        CREATE UNIQUE INDEX memberships_open ON memberships (conv_id, user_id)
            WHERE left_seq IS NULL;

        CREATE TABLE events (
            conv_id     INTEGER NOT NULL,
            seq         INTEGER NOT NULL,
            kind        TEXT NOT NULL,
            sender      INTEGER NOT NULL,
            ts          INTEGER NOT NULL,
            ciphertext  BLOB NOT NULL,
            prev_hash   BLOB NOT NULL,
            hash        BLOB NOT NULL,
            PRIMARY KEY (conv_id, seq),
            CHECK (seq >= 1)
        ) WITHOUT ROWID;
        CREATE INDEX events_messages ON events (conv_id, seq) WHERE kind = 'message';

        CREATE TABLE idempotency_keys (
            scope_conv     INTEGER NOT NULL,   -- 0 for conversation creations
            sender         INTEGER NOT NULL,
            client_msg_id  TEXT NOT NULL,
            conv_id        INTEGER NOT NULL,
            first_seq      INTEGER NOT NULL,
            last_seq       INTEGER NOT NULL,
            PRIMARY KEY (scope_conv, sender, client_msg_id)
        ) WITHOUT ROWID;

        CREATE TABLE data_keys (
            scope         TEXT NOT NULL,        -- 'conv', 'directory', later 'attachment'
            scope_id      INTEGER NOT NULL,
            version       INTEGER NOT NULL,
            kek_id        TEXT,
            wrapped       BLOB,                 -- NULL once destroyed (crypto-shredding)
            created_at    INTEGER NOT NULL,
            destroyed_at  INTEGER,
            PRIMARY KEY (scope, scope_id, version),
            CHECK ((wrapped IS NULL) = (destroyed_at IS NOT NULL))
        ) WITHOUT ROWID;

        CREATE TRIGGER events_append_only_update BEFORE UPDATE ON events
        BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
        CREATE TRIGGER events_append_only_delete BEFORE DELETE ON events
        BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;

        -- The writer caches conversation state; this makes the database itself refuse an
        -- append to a conversation that another process shredded meanwhile.
        CREATE TRIGGER events_refuse_shredded BEFORE INSERT ON events
        WHEN (SELECT shredded_at FROM conversations WHERE id = NEW.conv_id) IS NOT NULL
        BEGIN SELECT RAISE(ABORT, 'conversation shredded'); END;

        CREATE TRIGGER data_keys_no_delete BEFORE DELETE ON data_keys
        BEGIN SELECT RAISE(ABORT, 'data keys are destroyed, never deleted'); END;
        CREATE TRIGGER data_keys_no_resurrection BEFORE UPDATE ON data_keys
        WHEN OLD.destroyed_at IS NOT NULL
        BEGIN SELECT RAISE(ABORT, 'a destroyed data key stays destroyed'); END;

        CREATE TRIGGER memberships_no_delete BEFORE DELETE ON memberships
        BEGIN SELECT RAISE(ABORT, 'membership history is append-only'); END;
        CREATE TRIGGER memberships_close_once BEFORE UPDATE ON memberships
        WHEN OLD.left_seq IS NOT NULL OR NEW.joined_seq IS NOT OLD.joined_seq
             OR NEW.user_id IS NOT OLD.user_id OR NEW.conv_id IS NOT OLD.conv_id
        BEGIN SELECT RAISE(ABORT, 'a membership interval is closed once'); END;

        CREATE TRIGGER idempotency_keys_no_update BEFORE UPDATE ON idempotency_keys
        BEGIN SELECT RAISE(ABORT, 'idempotency keys are append-only'); END;
        """,
    ),
    Migration(
        2,
        "login tokens (hashed), per-user read markers, index of naming events",
        """
        CREATE TABLE auth_tokens (
            token_hash  BLOB PRIMARY KEY,        -- SHA-256 of the token; the token is never stored
            user_id     INTEGER NOT NULL REFERENCES users(id),
            created_at  INTEGER NOT NULL,
            expires_at  INTEGER NOT NULL,
            revoked_at  INTEGER,
            CHECK (length(token_hash) = 32),
            CHECK (expires_at > created_at)
        ) WITHOUT ROWID;
        CREATE INDEX auth_tokens_by_user ON auth_tokens (user_id) WHERE revoked_at IS NULL;
        CREATE INDEX auth_tokens_by_expiry ON auth_tokens (expires_at);

        CREATE TABLE read_markers (
            user_id     INTEGER NOT NULL REFERENCES users(id),
            conv_id     INTEGER NOT NULL REFERENCES conversations(id),
            read_seq    INTEGER NOT NULL CHECK (read_seq >= 0),
            updated_at  INTEGER NOT NULL,
            PRIMARY KEY (user_id, conv_id)
        ) WITHOUT ROWID;
        CREATE TRIGGER read_markers_forward_only BEFORE UPDATE ON read_markers
        WHEN NEW.read_seq < OLD.read_seq
        BEGIN SELECT RAISE(ABORT, 'a read marker never moves back'); END;

        -- The name a user sees is the last created/renamed event up to their last visible seq.
        CREATE INDEX events_names ON events (conv_id, seq) WHERE kind IN ('created', 'renamed');

        CREATE TRIGGER auth_tokens_revoke_once BEFORE UPDATE ON auth_tokens
        WHEN OLD.revoked_at IS NOT NULL OR NEW.token_hash IS NOT OLD.token_hash
             OR NEW.user_id IS NOT OLD.user_id OR NEW.expires_at IS NOT OLD.expires_at
        BEGIN SELECT RAISE(ABORT, 'a login token is only ever revoked'); END;
        """,
    ),
    Migration(
        3,
        "attachments: sealed names and thumbnails, per-attachment data keys, message references",
        """
        -- One row per uploaded attachment; its encrypted file is ROOT/ab/<id in hex> in the
        -- blob store, written (and fsynced) BEFORE this row is inserted, so a row never points
        -- to a missing file.  The id is random (63 bits), chosen before the file is written.
        -- The data key is a data_keys row (scope 'attachment', scope_id = id, version 1): KEK
        -- rotation re-wraps it with the others, and destroying it (retention shredding of the
        -- referencing conversation, or discarding an unsent upload) makes the file, the name
        -- and the thumbnail unreadable.
        -- Clear metadata, as for events: uploader, times, size, detected type, pixel size and
        -- whether there is a thumbnail; the server needs them to route, limit and serve
        -- (Content-Type, Content-Length, ranges).  The file name and the thumbnail are sealed.
        CREATE TABLE attachments (
            id          INTEGER PRIMARY KEY CHECK (id > 0),
            uploader    INTEGER NOT NULL REFERENCES users(id),
            created_at  INTEGER NOT NULL,
            expires_at  INTEGER NOT NULL,      -- discarded after this unless a message refers to it
            size        INTEGER NOT NULL CHECK (size >= 0),   -- plaintext bytes as stored
            kind        TEXT NOT NULL,         -- detected from the content: 'pdf', 'jpeg' ...
            mime        TEXT NOT NULL,
            name        BLOB NOT NULL,         -- sealed under the attachment's data key
            width       INTEGER,
            height      INTEGER,
            thumbnail   BLOB,                  -- sealed JPEG, images only
            conv_id     INTEGER REFERENCES conversations(id),  -- the message referring to it:
            seq         INTEGER,                               -- NULL until sent, then set once
            CHECK ((conv_id IS NULL) = (seq IS NULL)),
            CHECK (expires_at > created_at)
        );
        CREATE INDEX attachments_by_message ON attachments (conv_id, seq)
            WHERE conv_id IS NOT NULL;
        CREATE INDEX attachments_unsent ON attachments (expires_at) WHERE conv_id IS NULL;

        -- A sent attachment is part of the record: never deleted (shredding destroys its key).
        CREATE TRIGGER attachments_keep_sent BEFORE DELETE ON attachments
        WHEN OLD.conv_id IS NOT NULL
        BEGIN SELECT RAISE(ABORT, 'a sent attachment is never deleted'); END;

        -- The only update is setting the reference, once; nothing else ever changes.
        CREATE TRIGGER attachments_reference_once BEFORE UPDATE ON attachments
        WHEN OLD.conv_id IS NOT NULL OR NEW.conv_id IS NULL
             OR NEW.id IS NOT OLD.id OR NEW.uploader IS NOT OLD.uploader
             OR NEW.created_at IS NOT OLD.created_at OR NEW.expires_at IS NOT OLD.expires_at
             OR NEW.size IS NOT OLD.size OR NEW.kind IS NOT OLD.kind OR NEW.mime IS NOT OLD.mime
             OR NEW.name IS NOT OLD.name OR NEW.width IS NOT OLD.width
             OR NEW.height IS NOT OLD.height OR NEW.thumbnail IS NOT OLD.thumbnail
        BEGIN SELECT RAISE(ABORT, 'an attachment is only ever referenced, once'); END;

        -- ... and only by a message of its uploader, appended before the upload expired.
        CREATE TRIGGER attachments_referenced_by_own_message BEFORE UPDATE OF conv_id, seq
        ON attachments
        WHEN NOT EXISTS (
            SELECT 1 FROM events e WHERE e.conv_id = NEW.conv_id AND e.seq = NEW.seq
            AND e.kind = 'message' AND e.sender = OLD.uploader AND e.ts < OLD.expires_at)
        BEGIN SELECT RAISE(ABORT, 'an attachment is referenced by a message of its uploader'); END;
        """,
    ),
    Migration(
        4,
        "passwords: must-change flag for one-time passwords set by an administrator",
        """
        -- 1 from ``chatd user reset-password`` (a one-time password) until the user chose a
        -- new password; while it is 1 every session of the user is gated: only changing the
        -- password and logging out are allowed.
        ALTER TABLE users ADD COLUMN must_change_password INTEGER NOT NULL DEFAULT 0
            CHECK (must_change_password IN (0, 1));
        -- When the password was last set by its user or reset by an administrator (NULL:
        -- never since the account was created).
        ALTER TABLE users ADD COLUMN password_changed_at INTEGER;
        """,
    ),
    Migration(
        5,
        "languages: the language each account chose (NULL: follow the client, then the server)",
        """
        -- A preference, not personal data: kept in clear like ``disabled``.
        ALTER TABLE users ADD COLUMN language TEXT CHECK (language IN ('fr', 'en'));
        """,
    ),
    Migration(
        6,
        "store epoch: a random id of this database, replaced when an operator declares a new one",
        """
        -- Exactly one row.  The epoch is 16 random bytes in lower-case hexadecimal, made here
        -- (SQLite's randomblob is a CSPRNG) so that a new database and an existing one get
        -- theirs the same way.
        CREATE TABLE store_epoch (
            id           INTEGER PRIMARY KEY CHECK (id = 1),
            epoch        TEXT NOT NULL CHECK (length(epoch) = 32),
            declared_at  INTEGER NOT NULL       -- ms since the Unix epoch
        );
        INSERT INTO store_epoch (id, epoch, declared_at)
            VALUES (1, lower(hex(randomblob(16))), CAST(strftime('%s', 'now') AS INTEGER) * 1000);
        CREATE TRIGGER store_epoch_no_delete BEFORE DELETE ON store_epoch
        BEGIN SELECT RAISE(ABORT, 'a database always has an epoch'); END;
        """,
    ),
    Migration(
        7,
        "login attempts: the login throttle's budgets, durable and shared between nodes",
        """
        -- One row per attempt that counts: in flight (finished_at NULL) or failed.  A success
        -- deletes its own row and the finished failures of its login; rows leave after the
        -- window.  login_key and address_key are 16-byte keyed hashes (chatd.crypto.blind).
        CREATE TABLE login_attempts (
            id           INTEGER PRIMARY KEY,
            login_key    BLOB NOT NULL CHECK (length(login_key) = 16),
            address_key  BLOB NOT NULL CHECK (length(address_key) = 16),
            started_at   INTEGER NOT NULL,      -- ms since the Unix epoch
            finished_at  INTEGER                -- NULL: the password is being checked
        );
        CREATE INDEX login_attempts_by_login ON login_attempts (login_key, started_at);
        CREATE INDEX login_attempts_by_address ON login_attempts (address_key, started_at);
        CREATE INDEX login_attempts_by_start ON login_attempts (started_at);
        """,
    ),
    Migration(
        8,
        "sessions: a login's device and last sighting; the live connections of every node",
        """
        -- The family of the client's User-Agent at login ('chatd-cli', 'Firefox', ...), from a
        -- fixed vocabulary (chatd.core.devices): never text a person typed.  NULL: unknown.
        ALTER TABLE auth_tokens ADD COLUMN device TEXT
            CHECK (device IS NULL OR (length(device) BETWEEN 1 AND 32
                   AND device NOT GLOB '*[^A-Za-z0-9 ._-]*'));
        -- When a connection with this token was last open (ms since the Unix epoch).
        ALTER TABLE auth_tokens ADD COLUMN last_seen_at INTEGER;

        -- A token is only ever revoked or seen: its device and times never change.
        DROP TRIGGER auth_tokens_revoke_once;
        CREATE TRIGGER auth_tokens_revoke_once BEFORE UPDATE ON auth_tokens
        WHEN OLD.revoked_at IS NOT NULL OR NEW.token_hash IS NOT OLD.token_hash
             OR NEW.user_id IS NOT OLD.user_id OR NEW.expires_at IS NOT OLD.expires_at
             OR NEW.created_at IS NOT OLD.created_at OR NEW.device IS NOT OLD.device
        BEGIN SELECT RAISE(ABORT, 'a login token is only ever revoked'); END;

        -- One row per live WebSocket connection, whichever node holds it; a node refreshes
        -- seen_at of its rows periodically, so the rows of a node that died go stale.
        CREATE TABLE live_sessions (
            id          TEXT PRIMARY KEY,           -- node.counter: unique across nodes
            node        TEXT NOT NULL,
            user_id     INTEGER NOT NULL REFERENCES users(id),
            token_hash  BLOB NOT NULL,
            opened_at   INTEGER NOT NULL,
            seen_at     INTEGER NOT NULL
        ) WITHOUT ROWID;
        CREATE INDEX live_sessions_by_user ON live_sessions (user_id, seen_at);
        CREATE INDEX live_sessions_by_node ON live_sessions (node);
        """,
    ),
    Migration(
        9,
        "admin audit log: append-only, hash-chained records of administrators' actions",
        """
        -- One row per action (chatd.core.audit): who (an OS account's name, or later an
        -- administrator's user id), what, its target (a user id, a key id, a conversation id,
        -- an epoch) and its counts (a JSON object of whole numbers).  Identifiers only: a
        -- login is personal data, so an account is named by its id.  ``hash`` covers
        -- ``prev_hash`` and every field (chatd.crypto.chain.audit_link_hash), an HMAC under
        -- the log's data key (data_keys scope 'audit', made with the first record, re-wrapped
        -- by rotation, never destroyed); chatd verify recomputes the chain.
        CREATE TABLE admin_audit (
            seq          INTEGER PRIMARY KEY CHECK (seq >= 1),
            at           INTEGER NOT NULL,          -- ms since the Unix epoch
            actor_kind   TEXT NOT NULL,
            actor        TEXT NOT NULL,
            action       TEXT NOT NULL,
            target_kind  TEXT NOT NULL,
            target       TEXT NOT NULL,
            counts       TEXT NOT NULL,
            prev_hash    BLOB NOT NULL CHECK (length(prev_hash) = 32),
            hash         BLOB NOT NULL CHECK (length(hash) = 32)
        );
        CREATE TRIGGER admin_audit_no_update BEFORE UPDATE ON admin_audit
        BEGIN SELECT RAISE(ABORT, 'the admin audit log is append-only'); END;
        CREATE TRIGGER admin_audit_no_delete BEFORE DELETE ON admin_audit
        BEGIN SELECT RAISE(ABORT, 'the admin audit log is append-only'); END;
        -- Appends only at the end, linked to the last record: no gap, no fork, no insertion
        -- before a record, even through a sqlite3 shell that keeps the triggers.
        CREATE TRIGGER admin_audit_append_at_end BEFORE INSERT ON admin_audit
        WHEN NEW.seq IS NOT (SELECT COALESCE(MAX(seq), 0) + 1 FROM admin_audit)
             OR NEW.prev_hash IS NOT COALESCE(
                    (SELECT hash FROM admin_audit WHERE seq = NEW.seq - 1), zeroblob(32))
        BEGIN SELECT RAISE(ABORT, 'an admin audit record links to the last one'); END;
        """,
    ),
    Migration(
        10,
        "row MACs: the clear security columns of accounts, tokens, attachments, memberships",
        """
        -- The tag of the KEK (4 bytes) then HMAC-SHA256 (32 bytes) over the covered columns
        -- (chatd.crypto.row_macs.COLUMNS); NULL only until the backfill of this migration.
        ALTER TABLE users ADD COLUMN mac BLOB;
        ALTER TABLE auth_tokens ADD COLUMN mac BLOB;
        ALTER TABLE attachments ADD COLUMN mac BLOB;
        ALTER TABLE memberships ADD COLUMN mac BLOB;

        -- As in migration 3, and a MAC may be set with the reference or on its own.
        DROP TRIGGER attachments_reference_once;
        CREATE TRIGGER attachments_reference_once BEFORE UPDATE ON attachments
        WHEN NEW.id IS NOT OLD.id OR NEW.uploader IS NOT OLD.uploader
             OR NEW.created_at IS NOT OLD.created_at OR NEW.expires_at IS NOT OLD.expires_at
             OR NEW.size IS NOT OLD.size OR NEW.kind IS NOT OLD.kind OR NEW.mime IS NOT OLD.mime
             OR NEW.name IS NOT OLD.name OR NEW.width IS NOT OLD.width
             OR NEW.height IS NOT OLD.height OR NEW.thumbnail IS NOT OLD.thumbnail
             OR NOT ((NEW.conv_id IS OLD.conv_id AND NEW.seq IS OLD.seq)
                     OR (OLD.conv_id IS NULL AND NEW.conv_id IS NOT NULL))
        BEGIN SELECT RAISE(ABORT, 'an attachment is only ever referenced, once'); END;

        -- As in migration 1: closed once, never reopened; a MAC may change with it or alone.
        DROP TRIGGER memberships_close_once;
        CREATE TRIGGER memberships_close_once BEFORE UPDATE ON memberships
        WHEN NEW.joined_seq IS NOT OLD.joined_seq
             OR NEW.user_id IS NOT OLD.user_id OR NEW.conv_id IS NOT OLD.conv_id
             OR (OLD.left_seq IS NOT NULL AND NEW.left_seq IS NOT OLD.left_seq)
        BEGIN SELECT RAISE(ABORT, 'a membership interval is closed once'); END;

        -- As in migration 8: a revoked token changes no more, but for its MAC.
        DROP TRIGGER auth_tokens_revoke_once;
        CREATE TRIGGER auth_tokens_revoke_once BEFORE UPDATE ON auth_tokens
        WHEN NEW.token_hash IS NOT OLD.token_hash
             OR NEW.user_id IS NOT OLD.user_id OR NEW.expires_at IS NOT OLD.expires_at
             OR NEW.created_at IS NOT OLD.created_at OR NEW.device IS NOT OLD.device
             OR (OLD.revoked_at IS NOT NULL AND (NEW.revoked_at IS NOT OLD.revoked_at
                 OR NEW.last_seen_at IS NOT OLD.last_seen_at))
        BEGIN SELECT RAISE(ABORT, 'a login token is only ever revoked'); END;
        """,
        backfill=True,
    ),
    Migration(
        11,
        "row MACs: idempotency keys, the answer a retry gets",
        """
        -- As in migration 10, for the rows that say which operation a client_msg_id was
        -- and what it got (chatd.crypto.row_macs.COLUMNS): NULL only until the backfill.
        ALTER TABLE idempotency_keys ADD COLUMN mac BLOB;

        -- As in migration 1, but a MAC may be set (backfill, rotation).
        DROP TRIGGER idempotency_keys_no_update;
        CREATE TRIGGER idempotency_keys_no_update BEFORE UPDATE ON idempotency_keys
        WHEN NEW.scope_conv IS NOT OLD.scope_conv OR NEW.sender IS NOT OLD.sender
             OR NEW.client_msg_id IS NOT OLD.client_msg_id OR NEW.conv_id IS NOT OLD.conv_id
             OR NEW.first_seq IS NOT OLD.first_seq OR NEW.last_seq IS NOT OLD.last_seq
        BEGIN SELECT RAISE(ABORT, 'idempotency keys are append-only'); END;
        """,
        backfill=True,
    ),
    Migration(
        12,
        "upload quota: each user's buckets, shared by the nodes and kept across restarts",
        """
        -- One row per user whose buckets are not full (chatd.core.upload_quota.BudgetState):
        -- levels in token-milliseconds (negative: bytes owed), at updated_at (ms since the
        -- Unix epoch).  full_at: when both are full again, after which the row may go.
        CREATE TABLE upload_budgets (
            user_id       INTEGER PRIMARY KEY,
            upload_tokens INTEGER NOT NULL,
            byte_tokens   INTEGER NOT NULL,
            updated_at    INTEGER NOT NULL,
            full_at       INTEGER NOT NULL CHECK (full_at >= updated_at)
        );
        CREATE INDEX upload_budgets_by_full ON upload_budgets (full_at);
        """,
    ),
)

LATEST_VERSION = MIGRATIONS[-1].version
