"""``chatd audit``: the administrators' audit log, as the operator reads it."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

from chatd.admin_voice import ADMIN
from chatd.cli.common import (
    _,
    out,
)
from chatd.config import Settings
from chatd.core.audit import ActionKind, ActorKind, AuditEntry, AuditQuery
from chatd.i18n import N_
from chatd.services.maintenance import Maintenance
from chatd.wiring import open_store

# Who acted, as the operator reads it.
ACTOR_SAID = {
    ActorKind.OS_USER: N_("operator {name}"),
    ActorKind.ACCOUNT: N_("administrator account {name}"),
}


def moment(value: str) -> int:
    """``--since``/``--before``: an ISO date or date and time, in this machine's time zone
    unless it says its own; ms since the Unix epoch."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            _("'{value}' is not a date (YYYY-MM-DD or YYYY-MM-DDTHH:MM).", value=value)
        ) from None
    return int(parsed.astimezone().timestamp() * 1000)  # naive: the machine's local time


def audit_json(entry: AuditEntry) -> dict[str, object]:
    action = entry.action
    return {
        "seq": entry.seq,
        "at": entry.at_ms,
        "time": datetime.fromtimestamp(entry.at_ms / 1000, UTC).isoformat(),
        "actor": {"kind": action.actor.kind.value, "name": action.actor.name},
        "action": action.kind.value,
        "target": {"kind": action.target_kind.value, "id": action.target},
        "counts": dict(action.counts),
        "hash": entry.hash.hex(),
    }


async def cmd_audit(settings: Settings, args: argparse.Namespace) -> int:
    query = AuditQuery(
        since_ms=args.since,
        until_ms=args.before,
        kinds=frozenset(ActionKind(kind) for kind in args.action or ()),
    )
    shown = 0
    async with open_store(settings) as store:
        async for entry in Maintenance(store).audit_trail(query):
            shown += 1
            action = entry.action
            when = ADMIN.date_time(datetime.fromtimestamp(entry.at_ms / 1000, UTC))
            who = _(ACTOR_SAID[action.actor.kind], name=action.actor.name)
            what = action.said().render(ADMIN.lang)
            out(args, f"{entry.seq:>6}  {when}  {who}  {what}", audit_json(entry))
    if not shown and not args.json:
        print(_("No administrator action recorded."))
    return 0
