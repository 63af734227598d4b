"""The SQL of row MACs (:mod:`chatd.crypto.row_macs`): written with each change, backfilled by
migration 10, re-made by key rotation, checked at run time and by ``chatd verify``.

**Writing.**  Every change of a covered column sets ``mac`` in the same statement, in the
transaction of the change: an insert computes it from the values it writes; an update goes
through :func:`update_rows_txn`, which reads each row, checks its MAC, then writes the new
values with the MAC of the new row.  A row whose MAC did not verify keeps its old MAC: an
update never launders a tampered row (the old MAC still fails for the new values, unless the
update put back exactly what was MAC'd).

**Backfill** (:func:`backfill_txn`): rows that existed before migration 10 get their MAC in
the migration's own transaction, in the open that applies it.  Never later: a row found with
a NULL MAC afterwards is a problem that verify reports, not something to fill in.

**Checking at run time** (:func:`row_ok`): a login, a token's authentication and an
attachment's download check the rows they rely on; a row that fails is treated as absent
(the user gets the answer they would get anyway) and the operator log names the table and
the row by its ids — never a token or a hash.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import aiosqlite

from chatd.core.records import VerifyProblem
from chatd.crypto.row_macs import (
    ATTACHMENTS,
    AUTH_TOKENS,
    COLUMNS,
    IDEMPOTENCY_KEYS,
    MAC_BYTES,
    MEMBERSHIPS,
    PRIMARY_KEYS,
    TAG_BYTES,
    USERS,
    RowMacs,
    Verdict,
)
from chatd.store.row_mac_rows import PAGE, VERIFIED_TABLES, columns, row_ok, verify_problem, who

log = logging.getLogger("chatd.store")

ROW_MACS_MIGRATION = 10
# The tables each migration with a backfill put under MACs (the rows that exist then get one).
BACKFILLED: dict[int, tuple[str, ...]] = {
    ROW_MACS_MIGRATION: (USERS, AUTH_TOKENS, ATTACHMENTS, MEMBERSHIPS),
    11: (IDEMPOTENCY_KEYS,),
}


async def update_rows_txn(
    conn: aiosqlite.Connection,
    macs: RowMacs,
    table: str,
    where: str,
    params: Sequence[Any],
    changes: Mapping[str, Any],
) -> list[tuple[Any, ...]]:
    """Apply ``changes`` to the rows of ``table`` matching ``where``, each with its new MAC
    (or its old one, if that did not verify); the primary keys of the rows changed."""
    covered, keys = COLUMNS[table], PRIMARY_KEYS[table]
    rows = await conn.execute_fetchall(
        f"SELECT {columns(table)} FROM {table} WHERE {where}", tuple(params)
    )
    sets = ", ".join(f"{column} = ?" for column in (*changes, "mac"))
    match = " AND ".join(f"{column} = ?" for column in keys)
    done = []
    for row in rows:
        old, mac = tuple(row[:-1]), row[-1]
        fields = dict(zip(covered, old, strict=True))
        pk = tuple(fields[column] for column in keys)
        if row_ok(macs, table, old, mac, who(table, fields)):
            fields.update((k, v) for k, v in changes.items() if k in fields)
            mac = macs.mac(table, [fields[column] for column in covered])
        await conn.execute(
            f"UPDATE {table} SET {sets} WHERE {match}", (*changes.values(), mac, *pk)
        )
        done.append(pk)
    return done


async def remac_all_txn(conn: aiosqlite.Connection, macs: RowMacs) -> tuple[int, int]:
    """Re-MAC every row under the active KEK (key rotation): rows whose MAC verifies under
    any loaded KEK.  A row that fails keeps its MAC (verify reports it).  (re-MAC'd, kept)."""
    remade = kept = 0
    for table in COLUMNS:
        covered, keys = COLUMNS[table], PRIMARY_KEYS[table]
        match = " AND ".join(f"{column} = ?" for column in keys)
        updates = []
        for row in await conn.execute_fetchall(f"SELECT {columns(table)} FROM {table}"):
            old, mac = tuple(row[:-1]), row[-1]
            fields = dict(zip(covered, old, strict=True))
            if macs.kid_of(mac) == macs.active_id and macs.check(table, old, mac) is Verdict.OK:
                continue  # already under the active KEK
            if not row_ok(macs, table, old, mac, who(table, fields)):
                kept += 1
                continue
            updates.append((macs.mac(table, old), *(fields[column] for column in keys)))
        await conn.executemany(f"UPDATE {table} SET mac = ? WHERE {match}", updates)
        remade += len(updates)
    return remade, kept


async def backfill_txn(conn: aiosqlite.Connection, version: int, macs: RowMacs | None) -> None:
    """Migration 10's step in Python: MAC every row that exists (inside its transaction).

    ``macs`` is None only where no key file is at hand (the reference schema of
    :mod:`.schema_check`, the benchmark's empty database): there are no rows to MAC there,
    and a row left without a MAC would be reported by verify."""
    if version not in BACKFILLED or macs is None:
        return
    for table in BACKFILLED[version]:
        covered, keys = COLUMNS[table], PRIMARY_KEYS[table]
        match = " AND ".join(f"{column} = ?" for column in keys)
        updates = []
        for row in await conn.execute_fetchall(f"SELECT {columns(table)} FROM {table}"):
            fields = dict(zip(covered, row[:-1], strict=True))
            try:
                mac = macs.mac(table, row[:-1])
            except (TypeError, ValueError):  # a value no chatd row holds: left for verify
                continue
            updates.append((mac, *(fields[column] for column in keys)))
        await conn.executemany(f"UPDATE {table} SET mac = ? WHERE {match}", updates)


async def mac_tags_in_use_txn(conn: aiosqlite.Connection) -> set[bytes]:
    """The KEK tags of every well-formed MAC (``chatd keys retire`` refuses a KEK in use)."""
    tags: set[bytes] = set()
    for table in COLUMNS:
        rows = await conn.execute_fetchall(
            f"SELECT DISTINCT substr(mac, 1, {TAG_BYTES}) FROM {table}"
            f" WHERE typeof(mac) = 'blob' AND length(mac) = {MAC_BYTES}"
        )
        tags.update(bytes(r[0]) for r in rows)
    return tags


async def verify_row_macs_txn(conn: aiosqlite.Connection, macs: RowMacs) -> list[VerifyProblem]:
    """Every MAC'd row's MAC: a NULL, malformed, unknown-key or wrong MAC is a problem naming
    the table and the row by its ids.  Each table is read in one pass, a page at a time."""
    problems: list[VerifyProblem] = []
    for table in VERIFIED_TABLES:
        covered, order = COLUMNS[table], ", ".join(PRIMARY_KEYS[table])
        async with conn.execute(f"SELECT {columns(table)} FROM {table} ORDER BY {order}") as rows:
            while page := await rows.fetchmany(PAGE):
                for row in page:
                    verdict = macs.check(table, row[:-1], row[-1])
                    if verdict is not Verdict.OK:
                        fields = dict(zip(covered, row[:-1], strict=True))
                        problems.append(verify_problem(table, fields, verdict))
    return problems


__all__ = [
    "ATTACHMENTS",
    "AUTH_TOKENS",
    "MEMBERSHIPS",
    "USERS",
    "backfill_txn",
    "columns",
    "mac_tags_in_use_txn",
    "remac_all_txn",
    "row_ok",
    "update_rows_txn",
    "verify_row_macs_txn",
]
