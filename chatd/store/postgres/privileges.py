"""Who may do what in chatd's PostgreSQL database: the owner role and the application role.

Two roles, so that append-only is enforced twice by the database itself:

* **The owner role** runs the migrations (``chatd migrate``, with its own URL) and owns every
  table, sequence and trigger function.  The triggers bind it too: it cannot rewrite an event
  without first dropping or disabling a trigger, which the schema check sees.  No node runs
  with it.
* **The application role** is what every ``chatd serve`` node connects as.  It owns
  nothing, so it can neither drop nor disable a trigger, nor alter a table; it is granted
  exactly :data:`GRANTS`: SELECT and INSERT on ``events`` and ``admin_audit`` and nothing
  more (no UPDATE, DELETE or TRUNCATE: the privileges refuse before any trigger runs), and
  elsewhere only the statements the store makes — UPDATE limited to the columns the store
  changes (a token's ``revoked_at``, never its ``user_id``), DELETE only where rows do
  leave (expired tokens, unsent attachments, login attempts, full upload budgets, live
  sessions), TRUNCATE nowhere.  The sequences it draws ids from are granted USAGE.

:func:`grant_txn` makes the role's privileges exactly these (it revokes first, so a privilege
granted by hand does not linger); :func:`.migrations.migrate` calls it after the migrations
when given the role's name.  :func:`ensure_role_txn` creates the role (LOGIN, no password:
the operator sets one with psql's ``\\password``, so that chatd never handles it).
"""

from __future__ import annotations

from dataclasses import dataclass

from chatd.core.errors import MigrationError
from chatd.i18n import N_
from chatd.store.postgres.db import Connection

SCHEMA = "public"
NOT_AN_APPLICATION_ROLE = N_(
    "The role {role} cannot be the application role: it owns chatd's tables or is a"
    " superuser, so the append-only privileges would not bind it."
)


@dataclass(frozen=True)
class Grant:
    """What the application role may do to one table."""

    table: str
    insert: bool = True
    update: tuple[str, ...] = ()  # the columns it may set; () = no UPDATE at all
    delete: bool = False
    select: bool = True


GRANTS: tuple[Grant, ...] = (
    # The log: appended, never changed.
    Grant("events"),
    Grant("admin_audit"),
    Grant("memberships", update=("left_seq", "mac")),
    Grant("idempotency_keys", update=("mac",)),
    Grant("data_keys", update=("kek_id", "wrapped", "destroyed_at")),
    # A head moves with each append and is shredded once; head_version is the trigger's.
    Grant(
        "conversations",
        update=(
            "last_seq",
            "last_hash",
            "last_event_at",
            "last_message_seq",
            "name",
            "shredded_at",
        ),
    ),
    Grant(
        "users",
        update=(
            "password_hash",
            "must_change_password",
            "password_changed_at",
            "disabled",
            "terms_version",
            "language",
            "mac",
        ),
    ),
    Grant("auth_tokens", update=("revoked_at", "last_seen_at", "mac"), delete=True),
    Grant("attachments", update=("conv_id", "seq", "mac"), delete=True),
    Grant("read_markers", update=("read_seq", "updated_at")),
    Grant("store_epoch", insert=False, update=("epoch", "declared_at")),
    Grant("login_attempts", update=("finished_at",), delete=True),
    Grant(
        "upload_budgets",
        update=("upload_tokens", "byte_tokens", "updated_at", "full_at"),
        delete=True,
    ),
    Grant("live_sessions", update=("seen_at",), delete=True),
    Grant("schema_migrations", insert=False),
)
# nextval: ids the store takes, and head_versions (the trigger on conversations runs as the
# role that updates the head).
SEQUENCES: tuple[str, ...] = ("user_ids", "conversation_ids", "login_attempt_ids", "head_versions")


def grant_statements(role: str) -> list[str]:
    """The GRANTs of :data:`GRANTS` to ``role`` (already quoted as an identifier)."""
    statements = [f"GRANT USAGE ON SCHEMA {SCHEMA} TO {role}"]
    for grant in GRANTS:
        kinds = [k for k, on in (("SELECT", grant.select), ("INSERT", grant.insert)) if on]
        if grant.delete:
            kinds.append("DELETE")
        if grant.update:
            kinds.append(f"UPDATE ({', '.join(grant.update)})")
        statements.append(f"GRANT {', '.join(kinds)} ON {grant.table} TO {role}")
    statements.append(f"GRANT USAGE ON SEQUENCE {', '.join(SEQUENCES)} TO {role}")
    return statements


async def _quoted(conn: Connection, role: str) -> str:
    return str(await conn.fetchval("SELECT quote_ident($1)", role))


async def grant_txn(conn: Connection, role: str) -> None:
    """Make ``role``'s privileges on chatd's tables and sequences exactly :data:`GRANTS`."""
    row = await conn.fetchrow(
        "SELECT r.rolsuper OR pg_has_role(r.oid, t.tableowner, 'USAGE') AS unfit"
        " FROM pg_roles r, pg_tables t"
        " WHERE r.rolname = $1 AND t.schemaname = $2 AND t.tablename = 'events'",
        role,
        SCHEMA,
    )
    if row is not None and row["unfit"]:
        raise MigrationError(NOT_AN_APPLICATION_ROLE, role=role)
    quoted = await _quoted(conn, role)
    await conn.execute(f"REVOKE ALL ON ALL TABLES IN SCHEMA {SCHEMA} FROM {quoted}")
    await conn.execute(f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA {SCHEMA} FROM {quoted}")
    for statement in grant_statements(quoted):
        await conn.execute(statement)


async def ensure_role_txn(conn: Connection, role: str) -> bool:
    """Create ``role`` (LOGIN, no password) unless it exists; whether it was created.
    Needs CREATEROLE (or a superuser)."""
    if await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role):
        return False
    await conn.execute(f"CREATE ROLE {await _quoted(conn, role)} LOGIN")
    return True
