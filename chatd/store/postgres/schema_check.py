"""Is the PostgreSQL schema exactly what chatd's migrations create?

The defences of the log live in the schema: the append-only triggers and their functions,
the checks, the unique indexes.  The owner role can disable a trigger (``ALTER TABLE events
DISABLE TRIGGER …``), replace its function's body, or add a rule that rewrites an
``INSERT``, then edit rows at leisure, and no row would look wrong.  So ``chatd verify``
describes every object of the ``public`` schema from the catalogue, in PostgreSQL's own
words (``pg_get_triggerdef``, ``pg_get_functiondef``, ``pg_get_indexdef``,
``pg_get_constraintdef``, each column's type, nullability and default, each sequence's
parameters, whether a trigger is enabled, whether row security is on), plus the database's
event triggers (an extension's own objects are left out: an operator may install
``pg_stat_statements`` in ``public``; a trigger it would add to chatd's tables is not its
own, and is named), and compares the description with :data:`.schema_reference.REFERENCE`: a
missing, changed or unexpected object is a problem.

Why a reference kept in the code rather than one built at each verify (SQLite migrates an
empty database in memory): a verify runs as the application role, in a read-only snapshot,
and may create nothing.  The reference is what :func:`describe_txn` says of a database the
migrations have just made; ``tests/store/postgres/test_schema_check.py`` checks that it still
is, and ``python -m chatd.store.postgres.schema_check DSN`` prints it again after a new
migration (on a new, migrated database).  PostgreSQL's ``pg_get_*def`` output is stable
across the versions chatd supports; a new major version that words a definition otherwise
shows up in that test first.
"""

from __future__ import annotations

import asyncio
import sys

from chatd.core.records import VerifyProblem
from chatd.i18n import N_, Text
from chatd.store.postgres.db import Connection
from chatd.store.postgres.privileges import GRANTS, SEQUENCES

SchemaKey = tuple[str, str]  # kind, name

# Every object of the public schema, in PostgreSQL's words: (kind, name, definition).
DESCRIBE = r"""
SELECT 'table' AS kind, c.relname AS name,
       c.relkind::text || CASE WHEN c.relrowsecurity THEN ' row security' ELSE '' END
       || CASE WHEN c.relforcerowsecurity THEN ' forced' ELSE '' END AS definition
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
  AND NOT EXISTS (SELECT 1 FROM pg_depend x WHERE x.classid = 'pg_class'::regclass
                  AND x.objid = c.oid AND x.deptype = 'e')
UNION ALL
SELECT 'column', c.relname || '.' || a.attname,
       format_type(a.atttypid, a.atttypmod)
       || CASE WHEN a.attnotnull THEN ' NOT NULL' ELSE '' END
       || COALESCE(' DEFAULT ' || pg_get_expr(d.adbin, d.adrelid), '')
       || CASE WHEN a.attgenerated <> '' THEN ' GENERATED' ELSE '' END
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
  AND a.attnum > 0 AND NOT a.attisdropped
  AND NOT EXISTS (SELECT 1 FROM pg_depend x WHERE x.classid = 'pg_class'::regclass
                  AND x.objid = c.oid AND x.deptype = 'e')
UNION ALL
SELECT 'constraint', c.relname || '.' || con.conname, pg_get_constraintdef(con.oid)
FROM pg_constraint con
JOIN pg_class c ON c.oid = con.conrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public'
UNION ALL
SELECT 'index', i.relname, pg_get_indexdef(i.oid)
FROM pg_index x
JOIN pg_class i ON i.oid = x.indexrelid
JOIN pg_namespace n ON n.oid = i.relnamespace
WHERE n.nspname = 'public'
UNION ALL
SELECT 'sequence', c.relname,
       format_type(s.seqtypid, NULL) || ' start ' || s.seqstart || ' increment '
       || s.seqincrement || ' min ' || s.seqmin || ' max ' || s.seqmax || ' cache '
       || s.seqcache || CASE WHEN s.seqcycle THEN ' cycle' ELSE '' END
FROM pg_sequence s
JOIN pg_class c ON c.oid = s.seqrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public'
UNION ALL
SELECT 'trigger', c.relname || '.' || t.tgname,
       pg_get_triggerdef(t.oid) || ' [enabled ' || t.tgenabled::text || ']'
FROM pg_trigger t
JOIN pg_class c ON c.oid = t.tgrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND NOT t.tgisinternal
UNION ALL
SELECT 'function', p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')',
       CASE WHEN p.prokind IN ('f', 'p') THEN pg_get_functiondef(p.oid)
            ELSE 'kind ' || p.prokind::text END
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname = 'public'
  AND NOT EXISTS (SELECT 1 FROM pg_depend x WHERE x.classid = 'pg_proc'::regclass
                  AND x.objid = p.oid AND x.deptype = 'e')
UNION ALL
SELECT 'rule', r.tablename || '.' || r.rulename, r.definition
FROM pg_rules r WHERE r.schemaname = 'public'
UNION ALL
SELECT 'policy', p.tablename || '.' || p.policyname,
       p.cmd || ' ' || COALESCE(p.qual, '') || ' ' || COALESCE(p.with_check, '')
FROM pg_policies p WHERE p.schemaname = 'public'
UNION ALL
SELECT 'type', t.typname, t.typtype::text
FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
WHERE n.nspname = 'public' AND t.typtype IN ('c', 'd', 'e', 'r', 'm')
  AND NOT EXISTS (SELECT 1 FROM pg_class c WHERE c.reltype = t.oid)
  AND NOT EXISTS (SELECT 1 FROM pg_depend x WHERE x.classid = 'pg_type'::regclass
                  AND x.objid = t.oid AND x.deptype = 'e')
UNION ALL
SELECT 'event trigger', e.evtname, e.evtevent || ' ' || e.evtenabled::text
FROM pg_event_trigger e
ORDER BY 1, 2
"""

# The head of the generated schema_reference.py (data for the code, not a sentence).
REFERENCE_HEADER = (
    "# ruff: noqa: E501\n"
    '"""What :func:`chatd.store.postgres.schema_check.describe_txn` says of a database\n'
    "chatd's migrations have just made (generated by ``python -m\n"
    'chatd.store.postgres.schema_check DSN``; do not edit by hand)."""\n\n'
    "REFERENCE: dict[tuple[str, str], str] = {\n"
)

# Every privilege a role other than the owner holds on a table, a column or a sequence.
PRIVILEGES = r"""
SELECT c.relname AS object, NULL::text AS col, a.privilege_type AS privilege,
       CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee) END AS grantee
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace, aclexplode(c.relacl) a
WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'S') AND a.grantee <> c.relowner
  AND (a.grantee = 0 OR NOT pg_has_role(a.grantee, c.relowner, 'USAGE'))
UNION ALL
SELECT c.relname, t.attname, a.privilege_type,
       CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee) END
FROM pg_attribute t
JOIN pg_class c ON c.oid = t.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace, aclexplode(t.attacl) a
WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND a.grantee <> c.relowner
  AND (a.grantee = 0 OR NOT pg_has_role(a.grantee, c.relowner, 'USAGE'))
ORDER BY 4, 1, 2, 3
"""

MISSING = N_("schema: the {kind} {name} is missing")
CHANGED = N_("schema: the {kind} {name} differs from what the migrations create")
UNEXPECTED = N_("schema: the {kind} {name} was not created by the migrations")


async def describe_txn(conn: Connection) -> dict[SchemaKey, str]:
    """The description, with names qualified as the reference's are: PostgreSQL leaves a
    name unqualified when the search path finds it, so the path is pinned for the rest of
    the caller's transaction (the rest of verify names ``public``'s tables unqualified)."""
    await conn.execute("SELECT set_config('search_path', 'pg_catalog, public', true)")
    return {(str(r[0]), str(r[1])): str(r[2]) for r in await conn.fetch(DESCRIBE)}


def schema_problems(
    actual: dict[SchemaKey, str], reference: dict[SchemaKey, str]
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


def _allowed() -> set[tuple[str, str | None, str]]:
    """What :data:`.privileges.GRANTS` lets the application role do: (object, column,
    privilege); a column's UPDATE is granted by column, every other privilege by table."""
    allowed: set[tuple[str, str | None, str]] = set()
    for grant in GRANTS:
        on = (("SELECT", grant.select), ("INSERT", grant.insert), ("DELETE", grant.delete))
        allowed.update((grant.table, None, kind) for kind, granted in on if granted)
        allowed.update((grant.table, column, "UPDATE") for column in grant.update)
    allowed.update((sequence, None, "USAGE") for sequence in SEQUENCES)
    return allowed


async def privilege_problems_txn(conn: Connection) -> list[VerifyProblem]:
    """A privilege beyond :data:`.privileges.GRANTS`, held by a role that does not own the
    tables: the second defence of the log (no role but the owner may UPDATE or DELETE an
    event) undone by a GRANT, which changes no object of the schema."""
    allowed, problems = _allowed(), []
    for row in await conn.fetch(PRIVILEGES):
        table, column, privilege, grantee = row["object"], row["col"], row["privilege"], row[3]
        if (table, column, privilege) in allowed:
            continue
        name = f"{privilege} on {table}{'' if column is None else '.' + column} to {grantee}"
        problems.append(VerifyProblem(0, 0, Text(UNEXPECTED, {"kind": "privilege", "name": name})))
    return problems


async def check_schema_txn(conn: Connection) -> list[VerifyProblem]:
    """The schema's problems (none for a database made by chatd's migrations and granted
    by them)."""
    from chatd.store.postgres.schema_reference import REFERENCE

    problems = schema_problems(await describe_txn(conn), REFERENCE)
    return problems + await privilege_problems_txn(conn)


async def _print_reference(dsn: str) -> None:
    from chatd.store.postgres.db import connect, transaction

    conn = await connect(dsn)
    try:
        async with transaction(conn, "describe_schema", readonly=True):
            described = await describe_txn(conn)
    finally:
        await conn.close()
    entries = (f"    ({k!r}, {n!r}): {d!r},\n" for (k, n), d in sorted(described.items()))
    sys.stdout.write("".join([REFERENCE_HEADER, *entries, "}\n"]))


if __name__ == "__main__":
    asyncio.run(_print_reference(sys.argv[1]))
