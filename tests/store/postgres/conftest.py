"""A migrated PostgreSQL database shared by a module, with its application role.

Migrating costs little (~50 ms) but a database costs ~0.2 s: tests that only read the
schema, or change rows inside transactions they roll back, share one database per module
(:func:`migrated`), seeded with a few rows of every table (:data:`SEED`).  Tests that change
the schema or the roles take ``postgres_dsn`` (a database of their own).

Roles are the cluster's, not a database's: each module makes its own application role,
with a name no other run shares, and drops it at the end.
"""

from __future__ import annotations

import asyncio
import itertools
import os
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from chatd.store.postgres import db, migrations
from tests.servers.postgres import PostgresServer

_numbers = itertools.count(1)

LIVE, SHREDDED = 1, 2  # conversation ids
ALICE, BOB, CAROL = 1, 2, 3
H1, H2 = b"\x01" * 32, b"\x02" * 32  # the admin audit chain's two hashes
ZERO = bytes(32)
LIVE_TOKEN, REVOKED_TOKEN = b"L" * 32, b"R" * 32
SENT, UNSENT, SPARE = 10, 11, 12  # attachment ids
FAR = 10**13  # an expiry far in the future (ms)

# One committed state for the module: every table has rows a tamper case can aim at.
SEED = f"""
INSERT INTO users (id, login, password_hash, profile, created_at) VALUES
    ({ALICE}, 'alice', 'h', '\\x00', 1), ({BOB}, 'bob', 'h', '\\x00', 1),
    ({CAROL}, 'carol', 'h', '\\x00', 1);
INSERT INTO conversations (id, created_at, last_seq, last_hash, last_event_at, name)
    VALUES ({LIVE}, 1, 3, '\\x03', 3, '\\x00'), ({SHREDDED}, 1, 2, '\\x02', 2, '\\x00');
INSERT INTO events (conv_id, seq, kind, sender, ts, ciphertext, prev_hash, hash) VALUES
    ({LIVE}, 1, 'created', {ALICE}, 1, '\\x10', '\\x00', '\\x01'),
    ({LIVE}, 2, 'message', {ALICE}, 2, '\\x11', '\\x01', '\\x02'),
    ({LIVE}, 3, 'message', {BOB}, 3, '\\x12', '\\x02', '\\x03'),
    ({SHREDDED}, 1, 'created', {CAROL}, 1, '\\x20', '\\x00', '\\x01'),
    ({SHREDDED}, 2, 'message', {CAROL}, 2, '\\x21', '\\x01', '\\x02');
UPDATE conversations SET shredded_at = 5 WHERE id = {SHREDDED};
INSERT INTO memberships (conv_id, user_id, joined_seq, left_seq) VALUES
    ({LIVE}, {ALICE}, 1, NULL), ({LIVE}, {BOB}, 1, NULL), ({SHREDDED}, {CAROL}, 1, 3);
INSERT INTO idempotency_keys VALUES (0, {ALICE}, 'k1', {LIVE}, 1, 1, '\\x00'),
    ({LIVE}, {ALICE}, 'k2', {LIVE}, 2, 2, '\\x00');
INSERT INTO data_keys VALUES ('conv', {LIVE}, 1, 'kek1', '\\x0a', 1, NULL),
    ('conv', {SHREDDED}, 1, NULL, NULL, 1, 5);
INSERT INTO auth_tokens (token_hash, user_id, created_at, expires_at, revoked_at) VALUES
    ('\\x{LIVE_TOKEN.hex()}', {ALICE}, 1, {FAR}, NULL),
    ('\\x{REVOKED_TOKEN.hex()}', {BOB}, 1, {FAR}, 4);
INSERT INTO read_markers VALUES ({ALICE}, {LIVE}, 2, 2);
INSERT INTO attachments (id, uploader, created_at, expires_at, size, kind, mime, name,
                         conv_id, seq) VALUES
    ({SENT}, {ALICE}, 1, {FAR}, 3, 'pdf', 'application/pdf', '\\x00', {LIVE}, 2),
    ({UNSENT}, {ALICE}, 1, {FAR}, 3, 'pdf', 'application/pdf', '\\x00', NULL, NULL),
    ({SPARE}, {ALICE}, 1, {FAR}, 3, 'pdf', 'application/pdf', '\\x00', NULL, NULL);
INSERT INTO admin_audit VALUES
    (1, 1, 'os', 'root', 'user_disabled', 'user', '2', '{{}}', '\\x{ZERO.hex()}',
     '\\x{H1.hex()}'),
    (2, 2, 'os', 'root', 'user_enabled', 'user', '2', '{{}}', '\\x{H1.hex()}',
     '\\x{H2.hex()}');
INSERT INTO login_attempts (login_key, address_key, started_at)
    VALUES ('\\x{"00" * 16}', '\\x{"00" * 16}', 1);
INSERT INTO live_sessions VALUES ('n.1', 'n', {ALICE}, '\\x00', 1, 1);
INSERT INTO upload_budgets VALUES ({ALICE}, 0, 0, 1, 60001);
-- Explicit ids do not move a sequence: whoever inserts them (an import) moves it after.
SELECT setval('user_ids', (SELECT MAX(id) FROM users));
SELECT setval('conversation_ids', (SELECT MAX(id) FROM conversations));
"""


@dataclass(frozen=True)
class Migrated:
    server: PostgresServer
    database: str
    app_role: str

    @property
    def owner_dsn(self) -> str:
        return self.server.dsn(self.database)

    @property
    def app_dsn(self) -> str:
        return self.server.dsn(self.database, user=self.app_role)


async def migrate_and_seed(dsn: str, app_role: str | None, seed: str) -> None:
    conn = await db.connect(dsn)
    try:
        await migrations.migrate(conn, app_role=app_role)
        async with db.transaction(conn, "seed"):
            await conn.execute(seed)
    finally:
        await conn.close()


@pytest.fixture(scope="module")
def migrated(postgres_server: PostgresServer) -> Iterator[Migrated]:
    """A database migrated by the owner (the superuser here), seeded with :data:`SEED`, and
    an application role granted its privileges."""
    if not postgres_server.running:
        postgres_server.start()
    number = next(_numbers)
    database, role = f"pgschema_{os.getpid()}_{number}", f"chatd_app_{os.getpid()}_{number}"
    postgres_server.create_database(database)
    postgres_server.psql(f"CREATE ROLE {role} LOGIN")
    try:
        asyncio.run(migrate_and_seed(postgres_server.dsn(database), role, SEED))
        yield Migrated(postgres_server, database, role)
    finally:
        if not postgres_server.running:
            postgres_server.start()
        postgres_server.drop_database(database)
        postgres_server.psql(f"DROP ROLE IF EXISTS {role}")
