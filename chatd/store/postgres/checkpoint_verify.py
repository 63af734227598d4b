"""``chatd verify``'s checkpoint part on PostgreSQL: the whole log, then the database against
its last record.

As on SQLite (:mod:`chatd.store.sqlite.checkpoint_verify`, whose reasoning holds here): the
log is read and replayed from its first line; then, in the row audit's own snapshot, every
chain the last checkpoint names must be found with its hash at the checkpointed seq (the
chain walks of :mod:`.verify` have already proved that each chain links up to its head), the
schema must not be behind the checkpoint's, and the database's epoch must be the last
checkpoint's.  Reading the log before the snapshot is what makes this right with other
nodes appending: the log only holds committed heads, so a snapshot taken later holds every
one of them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace

from chatd.core.checkpoint_audit import audit_records, departures
from chatd.core.checkpoints import Checkpoint, Head
from chatd.core.errors import DatabaseDamaged
from chatd.core.records import VerifyProblem, VerifyReport
from chatd.crypto.keyring import KeyRing
from chatd.i18n import N_, Text
from chatd.store.checkpoint_log import CheckpointLog
from chatd.store.checkpointer import checkpoint_key
from chatd.store.postgres.chain_reads import facts_txn, read_epoch_txn, schema_version_txn
from chatd.store.postgres.db import Connection
from chatd.store.postgres.verify import UNREADABLE, unreadable


@dataclass(frozen=True, slots=True)
class Anchor:
    """What the log says the database must extend, and what is wrong with the log."""

    last: Checkpoint | None
    heads: dict[str, Head]
    problems: tuple[Text, ...]


async def read_checkpoint_log(
    log_file: CheckpointLog, ring: KeyRing, *, has_history: Callable[[], Awaitable[bool]]
) -> Anchor:
    lines, _ = await asyncio.to_thread(log_file.read_from, 0)
    if not lines:
        problems: tuple[Text, ...] = ()
        if await has_history():
            problems = (
                Text(
                    N_("there is no checkpoint log at {path} for a database that holds history"),
                    {"path": str(log_file.path)},
                ),
            )
        return Anchor(None, {}, problems)
    audit = audit_records(lines, lambda kid: checkpoint_key(ring, kid))
    return Anchor(audit.last, dict(audit.heads.heads), tuple(audit.problems))


async def extends_checkpoint_txn(
    conn: Connection, anchor: Anchor, report: VerifyReport
) -> VerifyReport:
    """``report`` with the log's problems and every departure from its last checkpoint."""
    problems = [VerifyProblem(0, 0, text) for text in anchor.problems]
    if anchor.last is not None:
        try:
            problems.extend(await _departures_txn(conn, anchor, anchor.last))
        except UNREADABLE as exc:
            problems.append(unreadable(exc))
        except DatabaseDamaged as exc:  # no epoch row
            problems.append(VerifyProblem(0, 0, exc.text))
    if not problems:
        return report
    return replace(report, problems=(*report.problems, *problems))


async def _departures_txn(
    conn: Connection, anchor: Anchor, last: Checkpoint
) -> list[VerifyProblem]:
    """The schema, the chains and the epoch against the last checkpoint."""
    problems = []
    schema = await schema_version_txn(conn)
    if schema < last.schema:
        problems.append(
            VerifyProblem(
                0,
                0,
                Text(
                    N_(
                        "the database schema is at version {found}, behind checkpoint {n}"
                        " (version {schema})"
                    ),
                    {"found": schema, "n": last.n, "schema": last.schema},
                ),
            )
        )
    at, last_seqs = await facts_txn(conn, anchor.heads)
    for departure in departures(last.n, anchor.heads, at, last_seqs):
        problems.append(VerifyProblem(departure.conv_id, departure.held.seq, departure.text()))
    if await read_epoch_txn(conn) != last.epoch:
        text = N_("the store epoch differs from the one of checkpoint {n}")
        problems.append(VerifyProblem(0, 0, Text(text, {"n": last.n})))
    return problems
