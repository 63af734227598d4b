"""Output: one line per thing for people, one JSON object per line for scripts.

Human lines follow the protocol's "shown as" column (``docs/protocol.md`` §7): messages are
``[seq] time marker sender: text`` with ``!`` for important and ``?`` for a question, system
events are sentences after ``*``.  Times are the terminal's; a time not of today carries its
date, as the language writes it (``01/12/2026 14:05`` in French).  Sentences are in chatd-cli's
language (:mod:`clients.cli.i18n`).  JSON lines keep the wire's field names so that scripts can
read the protocol doc; they are the same in every language.

Nothing from the server reaches the terminal as it is: every field goes through
:func:`~clients.cli.visible.visible` (single-line fields with their line feeds shown ``^J``),
and :class:`Output` passes every line through it again (JSON lines through ``safe_json``).
"""

from __future__ import annotations

import datetime
import json
import sys
from typing import Any, TextIO

from clients.cli.attachments import label
from clients.cli.directory import Directory
from clients.cli.errors import CliError
from clients.cli.i18n import _, date_time, ngettext
from clients.cli.protocol import Event
from clients.cli.visible import safe_json, visible

MARKERS = {"important": "!", "question": "?"}


def fmt_time(ts_ms: int | None, today: datetime.date | None = None) -> str:
    """When an event happened: ``14:05`` today, ``01/12/2026 14:05`` another day."""
    if not isinstance(ts_ms, int):
        return "--:--"
    moment = datetime.datetime.fromtimestamp(ts_ms / 1000).astimezone()  # the terminal's zone
    if moment.date() == (today or datetime.date.today()):
        return moment.strftime("%H:%M")
    return date_time(moment)


def fmt_date_time(ts_ms: int | None) -> str:
    """A moment with its date always (``01/12/2026 14:05`` in French): the end of a session,
    which may be tomorrow, reads unambiguously."""
    if not isinstance(ts_ms, int):
        return "--/--/---- --:--"
    return date_time(datetime.datetime.fromtimestamp(ts_ms / 1000).astimezone())


def quoted(name: object) -> str:
    """A conversation's name as sentences quote it: « Suivi » (no-break spaces in French)."""
    return _("« {name} »", name=visible(name)) if name is not None else _("(no name)")


def marker(event: Event) -> str:
    """The one-character column: ``!``/``?`` for tagged messages, ``*`` for system events."""
    if event.get("kind") == "message":
        return MARKERS.get(str(event.get("tag")), " ")
    return "*"


def attachment_lines(event: Event) -> list[str]:
    """``[attachment: name — type, size]`` for each file a message carries."""
    attachments = event.get("attachments") or []
    return [label(a) for a in attachments] if isinstance(attachments, list) else []


def event_text(event: Event, who: Directory) -> str:
    """What happened, as a sentence or a message line (without seq or time)."""
    kind = event.get("kind")
    sender = who.name(event.get("sender"))
    if kind == "message":
        text = visible(event.get("text", ""), newlines=True)
        if event.get("truncated"):
            text += "…"
        # Files are not fetched here (chatd-cli get does): one line each, under the text.
        lines = [text] if text else []
        lines += attachment_lines(event)
        return f"{sender}: " + "\n".join(lines)
    if kind == "created":
        return _("{sender} created {name}", sender=sender, name=quoted(event.get("name")))
    if kind == "joined":
        return _("{sender} added {user}", sender=sender, user=who.name(event.get("user")))
    if kind == "left":
        return _("{sender} left the conversation", sender=sender)
    if kind == "renamed":
        return _(
            "{sender} renamed the conversation {name}",
            sender=sender,
            name=quoted(event.get("name")),
        )
    return _("({kind} event)", kind=visible(kind))  # a kind from a later protocol version


def event_line(event: Event, who: Directory, *, label: str | None = None) -> str:
    """``[seq] time m text``; continuation lines of a message are indented under it."""
    head = f"[{event.get('seq')}] {fmt_time(event.get('ts'))} {marker(event)} "
    if label:
        head = f"{label} {head}"
    lines = event_text(event, who).split("\n")
    pad = " " * len(head)
    return head + ("\n" + pad).join(lines)


def conversation_label(conv: int, name: object) -> str:
    return f"#{conv} {quoted(name)}"


def conversation_line(entry: dict[str, Any], who: Directory) -> str:
    """One line of ``ls``."""
    name = visible(entry.get("name") or _("(expired)"))
    if not entry.get("member", True):
        name = _("{name} (left)", name=name)
    unread = int(entry.get("unread") or 0)
    count = ngettext("{n} unread", "{n} unread", unread) if unread else ""
    head = f"#{entry.get('conv'):<6} {name[:40]:<40} {count:>10}"
    last = entry.get("last")
    if isinstance(last, dict):
        preview = event_text(last, who).replace("\n", " ")
        head += f"  {fmt_time(last.get('ts'))} {marker(last)} {preview[:60]}"
    return head.rstrip()


def json_line(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


class Output:
    """Where a command's results go: human lines, or JSON lines with ``--json``."""

    def __init__(self, json_mode: bool, out: TextIO | None = None, err: TextIO | None = None):
        self.json = json_mode
        self._out = out or sys.stdout
        self._err = err or sys.stderr

    def result(self, human: str, data: Any) -> None:
        """One result: ``human`` for people, ``data`` as one JSON line for scripts."""
        line = safe_json(json_line(data)) if self.json else visible(human, newlines=True)
        self._out.write(line + "\n")
        self._out.flush()

    def note(self, message: str) -> None:
        """Progress and status for people, on stderr (never mixed with the results)."""
        self._err.write(visible(message, newlines=True) + "\n")
        self._err.flush()

    def error(self, exc: CliError) -> None:
        if self.json:
            data = {
                "error": exc.code or type(exc).__name__,
                "message": exc.message,
                "exit": int(exc.exit_code),
            }
            self._err.write(safe_json(json_line(data)) + "\n")
        else:
            said = _("chatd-cli: {message}", message=exc.message)
            self._err.write(visible(said, newlines=True) + "\n")
        self._err.flush()
