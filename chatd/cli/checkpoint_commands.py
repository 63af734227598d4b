"""``chatd checkpoints …`` and the start check of ``chatd serve``: the signed checkpoint log.

``show`` says where the log stands and whether the database extends it; ``export`` copies
its lines as they are (so that their links and MACs still check) for a copy off the host;
``declare-rewind`` is the operator's statement that an older database was restored on
purpose.  :func:`refuse_a_rewound_history` is why a server never serves a history that
moved back behind its operator's back.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from datetime import UTC, datetime

from chatd.admin_voice import ADMIN
from chatd.cli.claims import sole_use
from chatd.cli.common import EXIT_PROBLEM, _, ngettext, out
from chatd.config import Settings
from chatd.core.checkpoint_audit import Departure
from chatd.core.errors import HistoryRewound
from chatd.i18n import N_
from chatd.services.maintenance import Maintenance, os_operator
from chatd.store.checkpoint_log import CheckpointLog
from chatd.store.contract import Store
from chatd.wiring import open_store

SHOWN = 20  # departures listed one by one; the rest are counted


def _when(at_ms: int) -> str:
    return datetime.fromtimestamp(at_ms / 1000, UTC).isoformat(timespec="seconds")


def _say_departures(departures: list[Departure]) -> None:
    for departure in departures[:SHOWN]:
        print(_("BEHIND {what}", what=departure.text().render(ADMIN.lang)), file=sys.stderr)
    if len(departures) > SHOWN:
        rest = len(departures) - SHOWN
        print(ngettext("… and {n} more", "… and {n} more", rest), file=sys.stderr)


async def refuse_a_rewound_history(store: Store) -> None:
    """Raise :class:`HistoryRewound` unless the database extends the last checkpoint."""
    state = store.checkpoint_state()
    if state.problems:
        for problem in state.problems:
            print(_("BROKEN {problem}", problem=problem.render(ADMIN.lang)), file=sys.stderr)
        raise HistoryRewound(
            N_(
                "The checkpoint log {path} cannot be used, so the history cannot be checked;"
                " refusing to serve. See 'chatd verify'. If an older database was restored on"
                " purpose, declare it with 'chatd checkpoints declare-rewind'."
            ),
            path=str(store.checkpoint_log_path),
        )
    departures = await store.checkpoint_departures()
    if departures and state.last is not None:
        _say_departures(departures)
        raise HistoryRewound(
            N_(
                "The database is behind its last checkpoint ({n}, taken {at}): {count} chains"
                " moved back or vanished; refusing to serve. Restore the latest backup, or, if"
                " an older database was restored on purpose, declare it with 'chatd"
                " checkpoints declare-rewind'."
            ),
            n=state.last.n,
            at=_when(state.last.at_ms),
            count=len(departures),
        )


async def cmd_checkpoints_show(settings: Settings, args: argparse.Namespace) -> int:
    async with open_store(settings) as store:
        state = store.checkpoint_state()
        departures = [] if state.problems else await store.checkpoint_departures()
    for problem in state.problems:
        print(_("BROKEN {problem}", problem=problem.render(ADMIN.lang)), file=sys.stderr)
    _say_departures(departures)
    last = state.last
    data = {
        "log": str(store.checkpoint_log_path),
        "last": None
        if last is None
        else {
            "n": last.n,
            "kind": str(last.kind),
            "at": last.at_ms,
            "epoch": last.epoch,
            "chains": last.size,
            "root": last.root.hex(),
            "kid": last.kid,
        },
        "extends": not departures and not state.problems,
        "problems": len(state.problems) + len(departures),
    }
    if last is None:
        human = _("No checkpoint yet in {log}.", log=str(store.checkpoint_log_path))
    else:
        human = _(
            "Checkpoint {n} ({kind}) taken {at}: {chains}, root {root}, epoch {epoch}; {verdict}",
            n=last.n,
            kind=str(last.kind),
            at=_when(last.at_ms),
            chains=ngettext("{n} chain", "{n} chains", last.size),
            root=last.root.hex()[:16],
            epoch=last.epoch,
            verdict=_("the database extends it")
            if data["extends"]
            else _("the database does NOT extend it"),
        )
    out(args, human, data)
    return 0 if data["extends"] else EXIT_PROBLEM


async def cmd_checkpoints_export(settings: Settings, args: argparse.Namespace) -> int:
    """Copy the log's complete lines (from record ``--since`` on) byte for byte."""
    log_file = CheckpointLog(settings.store.checkpoint_log_path)
    lines, _end = await asyncio.to_thread(log_file.read_from, 0)
    chosen = [
        line.raw
        for line in lines
        if line.record is None or line.record.n >= args.since  # a bad line is evidence too
    ]
    data = b"".join(raw + b"\n" for raw in chosen)
    if args.output is None:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    else:
        await asyncio.to_thread(_append, args.output, data)
        print(
            ngettext("{n} record exported.", "{n} records exported.", len(chosen)),
            file=sys.stderr,
        )
    return 0


def _append(path: str, data: bytes) -> None:
    with open(path, "ab") as target:  # an off-host copy only ever grows
        target.write(data)
        target.flush()
        os.fsync(target.fileno())


async def cmd_checkpoints_declare_rewind(settings: Settings, args: argparse.Namespace) -> int:
    # Like a new epoch: a running server would go on with the epoch and heads it holds.
    async with (
        sole_use(settings, N_("declare a restored database")),
        open_store(settings) as store,
    ):
        state = store.checkpoint_state()
        departures = [] if state.problems else await store.checkpoint_departures()
        _say_departures(departures)
        record = await Maintenance(store).declare_rewind(len(departures), by=os_operator())
    out(
        args,
        _(
            "Restore declared: new store epoch {epoch}, checkpoint {n} starts from the database"
            " as it is.",
            epoch=record.epoch,
            n=record.n,
        ),
        {"epoch": record.epoch, "checkpoint": record.n, "departures": len(departures)},
    )
    return 0
