"""The SQL of row MACs on PostgreSQL (:mod:`chatd.crypto.row_macs`; the rules and the words
are :mod:`chatd.store.row_mac_rows`, shared with SQLite).

As on SQLite, every change of a covered column sets ``mac`` in the transaction of the change:
an insert computes it from the values it writes; an update goes through
:func:`update_rows_txn`, which locks and reads each row (``FOR UPDATE``: another node's
update of the same row waits, so the MAC written is the MAC of the row as it ends), checks
its MAC, then writes the new values with the MAC of the new row.  A row whose MAC did not
verify keeps its old MAC: an update never launders a tampered row.

There is no backfill: the PostgreSQL schema was born with its MAC columns, and an import
from SQLite carries each row's MAC as it is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from chatd.core.records import VerifyProblem
from chatd.crypto.row_macs import COLUMNS, MAC_BYTES, PRIMARY_KEYS, TAG_BYTES, RowMacs, Verdict
from chatd.store.postgres.db import Connection
from chatd.store.row_mac_rows import PAGE, VERIFIED_TABLES, columns, row_ok, verify_problem, who


def _match(keys: Sequence[str], first: int) -> str:
    return " AND ".join(f"{column} = ${first + i}" for i, column in enumerate(keys))


async def update_rows_txn(
    conn: Connection,
    macs: RowMacs,
    table: str,
    where: str,
    params: Sequence[Any],
    changes: Mapping[str, Any],
) -> list[tuple[Any, ...]]:
    """Apply ``changes`` to the rows of ``table`` matching ``where`` (``$1``… for
    ``params``), each with its new MAC (or its old one, if that did not verify); the primary
    keys of the rows changed, in the order of the primary key (so two nodes lock in one
    order)."""
    covered, keys = COLUMNS[table], PRIMARY_KEYS[table]
    order = ", ".join(keys)
    rows = await conn.fetch(
        f"SELECT {columns(table)} FROM {table} WHERE {where} ORDER BY {order} FOR UPDATE",
        *params,
    )
    sets = ", ".join(f"{column} = ${i + 1}" for i, column in enumerate((*changes, "mac")))
    match = _match(keys, len(changes) + 2)
    done = []
    for row in rows:
        old, mac = tuple(row)[:-1], row[-1]
        fields = dict(zip(covered, old, strict=True))
        pk = tuple(fields[column] for column in keys)
        if row_ok(macs, table, old, _bytes(mac), who(table, fields)):
            fields.update((k, v) for k, v in changes.items() if k in fields)
            mac = macs.mac(table, [fields[column] for column in covered])
        await conn.execute(f"UPDATE {table} SET {sets} WHERE {match}", *changes.values(), mac, *pk)
        done.append(pk)
    return done


async def remac_all_txn(conn: Connection, macs: RowMacs) -> tuple[int, int]:
    """Re-MAC every row under the active KEK (key rotation): rows whose MAC verifies under
    any loaded KEK.  A row that fails keeps its MAC (verify reports it).  (re-MAC'd, kept)."""
    remade = kept = 0
    for table in COLUMNS:
        covered, keys = COLUMNS[table], PRIMARY_KEYS[table]
        order = ", ".join(keys)
        updates = []
        rows = await conn.fetch(f"SELECT {columns(table)} FROM {table} ORDER BY {order} FOR UPDATE")
        for row in rows:
            old, mac = tuple(row)[:-1], _bytes(row[-1])
            fields = dict(zip(covered, old, strict=True))
            if macs.kid_of(mac) == macs.active_id and macs.check(table, old, mac) is Verdict.OK:
                continue  # already under the active KEK
            if not row_ok(macs, table, old, mac, who(table, fields)):
                kept += 1
                continue
            updates.append((macs.mac(table, old), *(fields[column] for column in keys)))
        if updates:
            await conn.executemany(f"UPDATE {table} SET mac = $1 WHERE {_match(keys, 2)}", updates)
        remade += len(updates)
    return remade, kept


async def mac_tags_in_use_txn(conn: Connection) -> set[bytes]:
    """The KEK tags of every well-formed MAC (``chatd keys retire`` refuses a KEK in use)."""
    tags: set[bytes] = set()
    for table in COLUMNS:
        rows = await conn.fetch(
            f"SELECT DISTINCT substring(mac FROM 1 FOR {TAG_BYTES}) FROM {table}"
            f" WHERE octet_length(mac) = {MAC_BYTES}"
        )
        tags.update(bytes(r[0]) for r in rows)
    return tags


async def verify_row_macs_txn(conn: Connection, macs: RowMacs) -> list[VerifyProblem]:
    """Every MAC'd row's MAC: a NULL, malformed, unknown-key or wrong MAC is a problem naming
    the table and the row by its ids.  Each table is read a page at a time by a cursor (the
    caller's transaction holds it)."""
    problems: list[VerifyProblem] = []
    for table in VERIFIED_TABLES:
        covered, order = COLUMNS[table], ", ".join(PRIMARY_KEYS[table])
        cursor = await conn.cursor(f"SELECT {columns(table)} FROM {table} ORDER BY {order}")
        while page := await cursor.fetch(PAGE):
            for row in page:
                values = tuple(row)
                verdict = macs.check(table, values[:-1], _bytes(values[-1]))
                if verdict is not Verdict.OK:
                    fields = dict(zip(covered, values[:-1], strict=True))
                    problems.append(verify_problem(table, fields, verdict))
    return problems


def _bytes(value: object) -> object:
    """asyncpg returns BYTEA as bytes already; anything else (NULL) is passed on as it is."""
    return bytes(value) if isinstance(value, bytearray | memoryview) else value


__all__ = [
    "columns",
    "mac_tags_in_use_txn",
    "remac_all_txn",
    "row_ok",
    "update_rows_txn",
    "verify_row_macs_txn",
]
