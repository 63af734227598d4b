"""Numbered, described schema migrations for the SQLite store.

Each migration runs in its own named transaction together with the row that records it in
``schema_migrations``; a database whose recorded version is newer than this code knows is
refused rather than used.  Never edit a published migration: add the next number.

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
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    sql: str


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
)

LATEST_VERSION = MIGRATIONS[-1].version
