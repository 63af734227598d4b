r"""``chatd-cli watch``: print every event as it arrives, across reconnects, until Ctrl-C.

A live :class:`~clients.cli.connection.Client`: on its first connection it takes each
conversation's current ``last_seq`` from ``list`` (so it prints what happens from now on, not
every window's backlog); after a drop it ``sync``\ s from the seqs it holds, so events sent
meanwhile are printed once, in order.  Results go to stdout (human lines, or the pushes as
JSON lines), connection status to stderr.
"""

from __future__ import annotations

import asyncio
from typing import Any

from clients.cli.commands import Context, report_outbox
from clients.cli.connection import Client, Status
from clients.cli.directory import Directory
from clients.cli.i18n import _, ngettext
from clients.cli.protocol import Push
from clients.cli.render import conversation_label, event_line
from clients.cli.visible import visible


async def cmd_watch(ctx: Context, args: Any) -> int:
    """Print every event as it arrives, across reconnects, until interrupted."""
    session = ctx.session()
    who = Directory(session.user)
    names: dict[int, Any] = {}
    queue: asyncio.Queue[Push] = asyncio.Queue()
    watching = args.conv

    async def prepare(client: Client, first: bool) -> None:
        if first:  # from now on: the backlog of every window is not what "watch" means
            entries = (await client.call_now("list"))["conversations"]
            client.check_list(entries)  # before holding: a head behind the held one warns
            for entry in entries:
                names[entry["conv"]] = entry.get("name")
                client.cursors.hold(entry["conv"], entry["last_seq"])

    def status(state: Status, detail: str) -> None:
        if state is Status.CONNECTED:
            ctx.out.note(
                _(
                    "Watching {server} as {login} (Ctrl-C to stop).",
                    server=ctx.server,
                    login=visible(session.login),
                )
            )
        elif state is Status.RECONNECTING:
            ctx.out.note(_("Connection lost ({reason}); reconnecting…", reason=detail))

    client = Client(
        session,
        live=True,
        prepare=prepare,
        on_push=queue.put_nowait,
        on_status=status,
        on_outbox=report_outbox(ctx.out),
    )
    async with client:
        printer = asyncio.get_running_loop().create_task(
            _print_pushes(ctx, client, who, names, queue, watching)
        )
        try:
            raise await client.wait_fatal()
        finally:
            printer.cancel()
            await asyncio.gather(printer, return_exceptions=True)


async def _print_pushes(
    ctx: Context,
    client: Client,
    who: Directory,
    names: dict[int, Any],
    queue: asyncio.Queue[Push],
    watching: int | None,
) -> None:
    while True:
        push = await queue.get()
        f = push.fields
        conv = f["conv"]
        if watching is not None and conv != watching:
            continue
        if push.op == "event":
            if f.get("kind") in ("created", "renamed"):
                names[conv] = f.get("name")
            if not ctx.out.json:  # names are for people; scripts get the ids
                await who.ensure(client, [x for x in (f.get("sender"), f.get("user")) if x])
            line = event_line(f, who, label=conversation_label(conv, names.get(conv)))
        elif push.op == "archived":
            line = _(
                "#{conv}: events before seq {seq} are archived.",
                conv=str(conv),
                seq=str(f["window_start"]),
            )
        else:
            line = ngettext(
                "#{conv}: read up to seq {seq} ({n} unread).",
                "#{conv}: read up to seq {seq} ({n} unread).",
                int(f.get("unread") or 0),
                conv=str(conv),
                seq=str(f.get("read_seq")),
            )
        ctx.out.result(line, {"op": push.op, **f})
