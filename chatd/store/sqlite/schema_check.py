"""Is the database's schema exactly what chatd's migrations create?

The defences of the log live in the schema itself: the append-only triggers, the checks,
the unique indexes.  Someone holding the database file can drop a trigger (``DROP TRIGGER
events_no_update``) or edit its SQL, then rewrite rows at leisure, and no row would look
wrong.  So ``chatd verify`` compares every object of ``sqlite_master`` (table, index,
trigger, view: its kind, name, table and SQL text) with a database the same migrations
create in memory, the reference.  A missing, changed or unexpected object is a problem.

Why this holds: SQLite keeps each CREATE statement's text as it was run, and ``ALTER TABLE``
rewrites it deterministically, so the same migrations give the same text byte for byte.  It
requires that a released migration is never edited (a rule of :mod:`.migrations`).
"""

from __future__ import annotations

import aiosqlite

from chatd.core.records import VerifyProblem
from chatd.i18n import N_, Text
from chatd.store.sqlite.db import migrate

SchemaObject = tuple[str, str, str, str | None]  # kind, name, table, SQL text

# SQLite's statistics tables come and go with ANALYZE: not chatd's.  Its automatic indexes
# (of UNIQUE and PRIMARY KEY constraints) follow from the tables, so they are compared too: a
# flipped byte in one's row (its type, say) is a change of the schema like any other.
SCHEMA_QUERY = (
    "SELECT type, name, tbl_name, sql FROM sqlite_master"
    " WHERE name NOT LIKE 'sqlite\\_stat%' ESCAPE '\\' ORDER BY type, name"
)

MISSING = N_("schema: the {kind} {name} is missing")
CHANGED = N_("schema: the {kind} {name} differs from what the migrations create")
UNEXPECTED = N_("schema: the {kind} {name} was not created by the migrations")

_reference: dict[tuple[str, str], SchemaObject] | None = None


async def schema_of_txn(conn: aiosqlite.Connection) -> dict[tuple[str, str], SchemaObject]:
    rows = await conn.execute_fetchall(SCHEMA_QUERY)
    return {(str(r[0]), str(r[1])): (str(r[0]), str(r[1]), str(r[2]), r[3]) for r in rows}


async def reference_schema() -> dict[tuple[str, str], SchemaObject]:
    """The schema the migrations create, from an empty database in memory (built once)."""
    global _reference
    if _reference is None:
        conn = await aiosqlite.connect(":memory:", isolation_level=None)
        try:
            await migrate(conn)
            _reference = await schema_of_txn(conn)
        finally:
            await conn.close()
    return _reference


def schema_problems(
    actual: dict[tuple[str, str], SchemaObject], reference: dict[tuple[str, str], SchemaObject]
) -> list[VerifyProblem]:
    """One problem per object missing, changed or not made by the migrations, by name."""
    problems: list[VerifyProblem] = []
    for key in sorted(reference.keys() | actual.keys(), key=lambda k: (k[1], k[0])):
        kind, name = key
        if key not in actual:
            why = MISSING
        elif key not in reference:
            why = UNEXPECTED
        elif actual[key] != reference[key]:
            why = CHANGED
        else:
            continue
        problems.append(VerifyProblem(0, 0, Text(why, {"kind": kind, "name": name})))
    return problems


async def check_schema_txn(conn: aiosqlite.Connection) -> list[VerifyProblem]:
    """The schema's problems (none for a database made by chatd's migrations)."""
    return schema_problems(await schema_of_txn(conn), await reference_schema())
