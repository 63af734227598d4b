"""``chatd-cli sessions``: your logins, one per device — list them, end one or all others.

``sessions`` lists them (the device is the family of the program that logged in, e.g.
``chatd-cli`` or ``Firefox``; when it logged in; when it was last connected; how many
connections it has now; ``*`` marks this one).  ``sessions revoke ID`` ends one (its open
connections close at once, on every server), ``sessions revoke --all`` every one but this.
"""

from __future__ import annotations

from typing import Any

from clients.cli.commands import Context, one_shot
from clients.cli.connection import Client
from clients.cli.directory import Directory
from clients.cli.errors import UsageError
from clients.cli.i18n import _, ngettext
from clients.cli.render import fmt_date_time

ACTIONS = ("revoke",)


def session_line(entry: dict[str, Any]) -> str:
    device = entry.get("device") or _("unknown device")
    seen = entry.get("last_seen_at")
    line = _(
        "{mark} {id}  {device}, logged in {created}, last connected {seen}",
        mark="*" if entry.get("current") else " ",
        id=str(entry.get("id")),
        device=str(device),
        created=fmt_date_time(entry.get("created_at")),
        seen=fmt_date_time(seen) if isinstance(seen, int) else _("never"),
    )
    connections = entry.get("connections")
    if isinstance(connections, int) and connections > 0:
        line += ngettext(" ({n} connection open)", " ({n} connections open)", connections)
    return line


async def cmd_sessions(ctx: Context, args: Any) -> int:
    if args.action is None:
        if args.id is not None or args.all:
            raise UsageError(_("To end sessions: chatd-cli sessions revoke ID, or --all."))
        return await _list(ctx)
    if (args.id is None) == (not args.all):
        raise UsageError(
            _("Name one session to end (its ID, as chatd-cli sessions shows it), or --all.")
        )
    return await _revoke(ctx, args.id)


async def _list(ctx: Context) -> int:
    async def body(client: Client, who: Directory) -> list[dict[str, Any]]:
        reply = await client.request("sessions")
        sessions: list[dict[str, Any]] = reply["sessions"]
        return sessions

    sessions = await one_shot(ctx, body)
    if not ctx.out.json:
        ctx.out.note(
            ngettext(
                "{n} open session (* this one):", "{n} open sessions (* this one):", len(sessions)
            )
        )
    for entry in sessions:
        ctx.out.result(session_line(entry), entry)
    return 0


async def _revoke(ctx: Context, session: str | None) -> int:
    async def body(client: Client, who: Directory) -> int:
        if session is None:
            reply = await client.request("revoke_other_sessions")
        else:
            reply = await client.request("revoke_session", session=session.lower())
        revoked = reply["revoked"]
        assert isinstance(revoked, int)
        return revoked

    revoked = await one_shot(ctx, body, fail_fast=False)
    if session is None:
        said = ngettext(
            "{n} other session ended; this one stays open.",
            "{n} other sessions ended; this one stays open.",
            revoked,
        )
    else:
        said = _("Session {id} ended.", id=session)
    ctx.out.result(said, {"server": ctx.server, "revoked": revoked, "session": session})
    return 0
