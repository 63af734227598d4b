"""``chatd-cli chat CONV``: the interactive view of one conversation (prompt_toolkit).

Why prompt_toolkit rather than textual: the view is three widgets — a header (name, members,
connection state), the message window, an input line — and prompt_toolkit gives exactly that
as a full-screen asyncio application, with a small dependency footprint, in any terminal,
and is simple to drive through a pseudo-terminal in tests.

The view is a :class:`~clients.cli.state.ConversationLog` drawn on every change.  Lines typed
go to the outbox first (shown dimmed, "sending…" or "queued" while offline) and leave it
when their event arrives; the :class:`~clients.cli.connection.Client` reconnects and resumes
on its own, and the header shows "reconnecting…" meanwhile.
"""

from __future__ import annotations

import asyncio
import sys
import textwrap
from collections.abc import Callable
from typing import Any

from prompt_toolkit.application import Application
from prompt_toolkit.buffer import Buffer
from prompt_toolkit.data_structures import Point
from prompt_toolkit.formatted_text import StyleAndTextTuples
from prompt_toolkit.key_binding import KeyBindings, KeyPressEvent
from prompt_toolkit.layout import HSplit, Layout, Window
from prompt_toolkit.layout.controls import FormattedTextControl
from prompt_toolkit.styles import Style
from prompt_toolkit.widgets import TextArea

from clients.cli.commands import Context
from clients.cli.config import Session
from clients.cli.connection import Client, Status
from clients.cli.directory import Directory
from clients.cli.errors import CliError, NotFoundError, UsageError
from clients.cli.i18n import N_, _, ngettext
from clients.cli.outbox import OutboxEntry
from clients.cli.protocol import MAX_INT, Push, history_fields, send_fields
from clients.cli.render import attachment_lines, event_text, fmt_time, marker, quoted
from clients.cli.state import ConversationLog
from clients.cli.visible import visible

# Each line fits an 80-column terminal, in every language (a test checks the French);
# /help shows them all above the input line.
HELP = N_(
    "/important TEXT  important (!)        /question TEXT  a question (?)\n"
    "/add LOGIN       add someone          /rename NAME    rename the conversation\n"
    "/leave           leave (asks again)   /history        load older events\n"
    "/quit, Ctrl-C    quit                 //text          sends the text '/text'\n"
    "PgUp/PgDn        scroll the messages"
)
NOTICE_MAX_LINES = 8
INDENT = " " * 6  # continuation lines of a wrapped message


def wrap_words(text: str, width: int, first: int = 0, indent: str = "") -> list[str]:
    """``text`` in lines of at most ``width`` columns, broken between words (a word longer
    than a line is cut); the first line starts ``first`` columns in, the others after
    ``indent``.  The text's own line breaks are kept."""
    width = max(width, len(indent) + 10, first + 10)
    lines: list[str] = []
    for number, paragraph in enumerate(text.split("\n")):
        lead = " " * first if number == 0 else indent
        wrapped = textwrap.wrap(
            paragraph,
            width,
            initial_indent=lead,
            subsequent_indent=indent,
            break_on_hyphens=False,
            drop_whitespace=True,
        ) or [lead]
        lines.extend(wrapped)
    lines[0] = lines[0][first:]
    return lines


def shown(draw: Callable[[], StyleAndTextTuples]) -> Callable[[], StyleAndTextTuples]:
    """``draw``, every fragment's text through :func:`visible`: whatever a drawing function
    forgot, no control character from the server reaches the terminal (prompt_toolkit shows
    C0 as ``^X`` itself, but not C1, bidirectional or other invisible characters)."""

    def drawn() -> StyleAndTextTuples:
        out: StyleAndTextTuples = []
        for fragment in draw():
            if len(fragment) == 2:
                out.append((fragment[0], visible(fragment[1], newlines=True)))
            else:
                out.append((fragment[0], visible(fragment[1], newlines=True), fragment[2]))
        return out

    return drawn


STYLE = Style.from_dict(
    {
        "header": "reverse",
        "status.ok": "reverse",
        "status.bad": "reverse bold",
        "time": "#888888",
        "sender": "bold",
        "me": "bold #5f87d7",
        "important": "bold #d70000",
        "question": "bold #d78700",
        "system": "italic #888888",
        "attachment": "#5f87af",
        "pending": "#888888",
        "notice": "#d78700",
    }
)


class ChatView:
    def __init__(self, conv: int, session: Session) -> None:
        self.conv = conv
        self.me = session.user_id
        self.who = Directory(session.user)
        self.log = ConversationLog(conv, me=self.me)
        self.status = Status.CONNECTING
        self.notice = _("Type a message and press Enter. /help lists the commands.")
        self.scroll = 0  # lines scrolled up from the bottom
        self._confirm_leave = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._reading = False
        self._running = asyncio.Event()
        self.client = Client(
            session,
            live=True,
            prepare=self._prepare,
            on_push=self._on_push,
            on_status=self._on_status,
            on_outbox=self._on_outbox,
            on_rewind=lambda rewind: self.say(rewind.sentence()),  # stderr would tear the screen
        )
        self.input = TextArea(
            height=1, prompt="> ", multiline=False, wrap_lines=False, accept_handler=self._accept
        )
        self.messages = Window(  # lines are wrapped between words by _message_lines
            FormattedTextControl(shown(self._message_lines), get_cursor_position=self._cursor),
            wrap_lines=False,
        )
        header = Window(
            FormattedTextControl(shown(self._header)),
            height=2,
            style="class:header",
            wrap_lines=True,
        )
        status = Window(
            FormattedTextControl(shown(self._status_line)),
            height=lambda: min(NOTICE_MAX_LINES, len(self._status_text())),
        )
        self.app: Application[None] = Application(
            layout=Layout(HSplit([header, self.messages, status, self.input]), self.input),
            key_bindings=self._keys(),
            style=STYLE,
            full_screen=True,
        )

    # ------------------------------------------------------------------ running

    async def run(self) -> int:
        async with self.client:
            watcher = self._spawn(self._stop_on_fatal())
            try:
                await self.app.run_async(pre_run=self._running.set)
            finally:
                watcher.cancel()
                for task in list(self._tasks):
                    task.cancel()
                await asyncio.gather(*self._tasks, return_exceptions=True)
        left = [e for e in self.client.outbox.pending() if e.conv == self.conv]
        if left:
            print(
                ngettext(
                    "{n} message not delivered yet: it stays in the outbox and will be sent by"
                    " the next chatd-cli command that connects (see: chatd-cli outbox).",
                    "{n} messages not delivered yet: they stay in the outbox and will be sent"
                    " by the next chatd-cli command that connects (see: chatd-cli outbox).",
                    len(left),
                ),
                file=sys.stderr,
            )
        return 0

    async def _stop_on_fatal(self) -> None:
        error = await self.client.wait_fatal()
        await self._running.wait()  # exit() refuses an application not yet running
        self.app.exit(exception=error)

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and isinstance(task.exception(), CliError):
            self.say(str(task.exception()))

    def say(self, notice: str) -> None:
        self.notice = visible(notice, newlines=True)  # may be the server's sentence
        self.app.invalidate()

    # ------------------------------------------------------------------ client events

    async def _prepare(self, client: Client, first: bool) -> None:
        if not first:
            return  # sync resumes from what the log holds
        entry = None
        listed = (await client.call_now("list"))["conversations"]
        client.check_list(listed)  # before holding: a head behind the held one warns
        for item in listed:
            client.cursors.hold(item["conv"], item["last_seq"])  # no backlog of the others
            if item["conv"] == self.conv:
                entry = item
        if entry is None:
            raise NotFoundError(_("You are not in a conversation #{conv}.", conv=str(self.conv)))
        typed_meanwhile = self.log.pending
        self.log = ConversationLog.from_list_entry(entry, self.me)
        self.log.pending = typed_meanwhile
        page = await client.call_now("history", **history_fields(self.conv, limit=50))
        self._add_page(page)
        client.cursors.held[self.conv] = self.log.last_seq or entry["last_seq"]
        await self._names(client.immediate)
        self._mark_read()

    def _add_page(self, page: dict[str, Any]) -> int:
        added = sum(self.log.add(event) for event in page.get("events", []))
        if page.get("archived"):
            self.log.archived(int(page.get("window_start") or 1))
        return added

    async def _names(self, requester: Any) -> None:
        ids = set(self.log.members)
        for event in self.log.events.values():
            ids.update(x for x in (event.get("sender"), event.get("user")) if isinstance(x, int))
        await self.who.ensure(requester, ids)
        self.app.invalidate()

    def _on_push(self, push: Push) -> None:
        conv = push.fields.get("conv")
        if conv != self.conv:
            if push.op == "event" and push.fields.get("kind") == "message":
                self.say(_("New message in #{conv} (chatd-cli chat {conv}).", conv=str(conv)))
            return
        if push.op == "event":
            self.log.add(push.fields)
            self.scroll = 0
            self._spawn(self._names(self.client))
            self._mark_read()
        elif push.op == "archived":
            self.log.archived(int(push.fields["window_start"]))
        self.app.invalidate()

    def _on_status(self, status: Status, detail: str) -> None:
        self.status = status
        self.app.invalidate()

    def _on_outbox(self, entry: OutboxEntry, result: dict[str, Any] | CliError, mine: bool) -> None:
        if entry.conv != self.conv:
            return
        if isinstance(result, CliError):
            self.log.dropped(entry.client_msg_id)
            self.say(_("Not done: {message}", message=result.message))
        else:
            self.log.acked(entry.client_msg_id, int(result["last_seq"]))
        self.app.invalidate()

    def _mark_read(self) -> None:
        """The user sees the conversation: move the read marker (one request at a time)."""
        if self._reading or not self.log.member:
            return
        self._reading = True

        async def read() -> None:
            try:
                await self.client.request("read", conv=self.conv, seq=MAX_INT)
            except CliError:
                pass  # only the unread count elsewhere suffers
            finally:
                self._reading = False

        self._spawn(read())

    # ------------------------------------------------------------------ input

    def _accept(self, buffer: Buffer) -> bool:
        try:
            self.handle(buffer.text.strip("\n"))
        except CliError as exc:
            self.say(exc.message)
        return False  # clear the input line

    def handle(self, line: str) -> None:
        """One line typed: a message, or a slash command."""
        if not line.strip():
            return
        if line.startswith("//"):
            self.send(line[1:])
            return
        if not line.startswith("/"):
            self.send(line)
            return
        command, _space, rest = line[1:].partition(" ")
        rest = rest.strip()
        if command != "leave":
            self._confirm_leave = False
        if command in ("important", "question"):
            self.send(rest, command)
        elif command == "add":
            self._spawn(self._add(rest))
        elif command == "leave":
            if not self._confirm_leave:
                self._confirm_leave = True
                self.say(_("Type /leave again to leave; you will no longer see new messages."))
            else:
                self._confirm_leave = False
                self.change("leave", {"conv": self.conv})
        elif command == "rename":
            if not rest:
                raise UsageError(_("Usage: /rename NAME"))
            self.change("rename", {"conv": self.conv, "name": rest})
        elif command == "history":
            self._spawn(self._older())
        elif command in ("quit", "exit", "q"):
            self.app.exit()
        elif command == "help":
            self.say(_(HELP))
        else:
            raise UsageError(
                _("Unknown command /{command}: /help lists the commands.", command=command)
            )

    def send(self, text: str, tag: str | None = None) -> None:
        if not text.strip():
            raise UsageError(_("The message is empty."))
        self.change("send", send_fields(self.conv, text, tag))

    def change(self, op: str, fields: dict[str, Any]) -> None:
        if not self.log.member:
            raise UsageError(_("You left this conversation: it is read-only."))
        entry, _done = self.client.submit(op, fields)
        self.log.queued(entry.client_msg_id, op, fields)
        self.scroll = 0
        self.app.invalidate()

    async def _add(self, login: str) -> None:
        if not login:
            raise UsageError(_("Usage: /add LOGIN"))
        (user,) = await self.who.resolve(self.client, [login])
        self.change("add", {"conv": self.conv, "user": user})

    async def _older(self) -> None:
        first = self.log.first_seq
        if first is None or first <= 1 or self.log.archived_before is not None:
            self.say(_("Nothing older to load."))
            return
        page = await self.client.request(
            "history", **history_fields(self.conv, before=first, limit=50)
        )
        added = self._add_page(page)
        await self._names(self.client)
        self.say(ngettext("Loaded {n} older event.", "Loaded {n} older events.", added))

    def _keys(self) -> KeyBindings:
        keys = KeyBindings()

        @keys.add("c-c")
        @keys.add("c-d")
        def _quit(event: KeyPressEvent) -> None:
            event.app.exit()

        @keys.add("pageup")
        def _up(event: KeyPressEvent) -> None:
            self.scroll += self._page()

        @keys.add("pagedown")
        def _down(event: KeyPressEvent) -> None:
            self.scroll = max(0, self.scroll - self._page())

        return keys

    def _page(self) -> int:
        info = self.messages.render_info
        return max(1, (info.window_height if info else 10) - 2)

    # ------------------------------------------------------------------ drawing

    def _header(self) -> StyleAndTextTuples:
        names = ", ".join(sorted(self.who.name_with_structure(m) for m in self.log.members))
        title = f" #{self.conv} {quoted(self.log.name)}"
        if not self.log.member:
            left = _("(you left: read-only)")
            title = f"{title}  {left}"
        members = _("Members: {names}", names=names)
        return [("class:header", f"{title}  [{self.status.label()}]\n"), ("", f" {members}")]

    def _width(self) -> int:
        return int(self.app.output.get_size().columns)

    def _status_state(self) -> str:
        pending = len(self.log.still_pending())
        state = self.status.label()
        if pending:
            waiting = ngettext("{n} pending", "{n} pending", pending)
            state = f"{state} · {waiting}"
        return f" {state} "

    def _status_text(self) -> list[str]:
        """The connection state, then the notice, wrapped between words."""
        width = self._width() - 1
        if "\n" in self.notice:  # a table (/help): from the next line, its columns kept
            return ["", *(" " + line for line in wrap_words(self.notice, width - 1))]
        return wrap_words(self.notice, width, first=len(self._status_state()) + 1, indent=" ")

    def _status_line(self) -> StyleAndTextTuples:
        ok = self.status is Status.CONNECTED
        lines = self._status_text()[:NOTICE_MAX_LINES]
        out: StyleAndTextTuples = [
            ("class:status.ok" if ok else "class:status.bad", self._status_state())
        ]
        out.append(("class:notice", " " + "\n".join(lines)))
        return out

    def _message_lines(self) -> StyleAndTextTuples:
        out: StyleAndTextTuples = []
        if self.log.archived_before is not None:
            out.append(("class:system", _("(older events are archived)") + "\n"))
        elif (self.log.first_seq or 1) > 1:
            out.append(("class:system", _("(/history loads older events)") + "\n"))
        width = self._width()
        for event in self.log.ordered():
            mark = marker(event)
            sender = event.get("sender")
            when = f"{fmt_time(event.get('ts'))} "
            out.append(("class:time", when))
            if event.get("kind") != "message":
                text = "* " + event_text(event, self.who)
                body = wrap_words(text, width, first=len(when), indent=INDENT)
                out.append(("class:system", "\n".join(body) + "\n"))
                continue
            style = {"!": "class:important", "?": "class:question"}.get(mark, "")
            out.append((style, f"{mark} "))
            name = self.who.name(sender)
            out.append(("class:me" if sender == self.me else "class:sender", name))
            lead = len(when) + len(mark) + 1 + len(name) + 2
            text = visible(event.get("text", ""), newlines=True)
            body = wrap_words(text, width, first=lead, indent=INDENT)
            out.append(("", ": " + "\n".join(body) + "\n"))
            for shown in attachment_lines(event):  # chatd-cli get CONV SEQ downloads them
                seq = _("(seq {seq})", seq=str(event.get("seq")))
                out.append(("class:attachment", f"        {shown}  {seq}\n"))
        offline = self.status is not Status.CONNECTED
        for line in self.log.still_pending():
            what = line.fields.get("text") or f"/{line.op} {line.fields.get('name', '')}".strip()
            state = _("queued, offline") if offline else _("sending…")
            out.append(("class:pending", f"      {what}  ({state})\n"))
        return out

    def _cursor(self) -> Point:
        lines = sum(fragment[1].count("\n") for fragment in self._message_lines())
        return Point(0, max(0, lines - 1 - self.scroll))


async def cmd_chat(ctx: Context, args: Any) -> int:
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise UsageError(_("chat needs a terminal; scripts use send, history and watch."))
    return await ChatView(args.conv, ctx.session()).run()
