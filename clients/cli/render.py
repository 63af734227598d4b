"""Output: one line per thing for people, one JSON object per line for scripts.

Human lines follow the protocol's "shown as" column (``docs/protocol.md`` §7): messages are
``[seq] time marker sender: text`` with ``!`` for important and ``?`` for a question, system
events are sentences after ``*``.  Times are local; a time not of today carries its date.
JSON lines keep the wire's field names so that scripts can read the protocol doc.
"""

from __future__ import annotations

import datetime
import json
import sys
from typing import Any, TextIO

from clients.cli.attachments import label
from clients.cli.directory import Directory
from clients.cli.errors import CliError
from clients.cli.protocol import Event

MARKERS = {"important": "!", "question": "?"}


def fmt_time(ts_ms: int | None, today: datetime.date | None = None) -> str:
    if not isinstance(ts_ms, int):
        return "--:--"
    moment = datetime.datetime.fromtimestamp(ts_ms / 1000)
    if moment.date() == (today or datetime.date.today()):
        return moment.strftime("%H:%M")
    return moment.strftime("%Y-%m-%d %H:%M")


def quoted(name: object) -> str:
    return f"« {name} »" if name is not None else "(no name)"


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
        text = str(event.get("text", ""))
        if event.get("truncated"):
            text += "…"
        # Files are not fetched here (chatd-cli get does): one line each, under the text.
        lines = [text] if text else []
        lines += attachment_lines(event)
        return f"{sender}: " + "\n".join(lines)
    if kind == "created":
        return f"{sender} created {quoted(event.get('name'))}"
    if kind == "joined":
        return f"{sender} added {who.name(event.get('user'))}"
    if kind == "left":
        return f"{sender} left the conversation"
    if kind == "renamed":
        return f"{sender} renamed the conversation {quoted(event.get('name'))}"
    return f"({kind} event)"  # a kind from a later protocol version: a neutral line


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
    name = entry.get("name") or "(expired)"
    if not entry.get("member", True):
        name += " (left)"
    unread = int(entry.get("unread") or 0)
    head = f"#{entry.get('conv'):<6} {name[:40]:<40} {f'{unread} unread' if unread else '':>10}"
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
        self._out.write((json_line(data) if self.json else human) + "\n")
        self._out.flush()

    def note(self, message: str) -> None:
        """Progress and status for people, on stderr (never mixed with the results)."""
        self._err.write(message + "\n")
        self._err.flush()

    def error(self, exc: CliError) -> None:
        if self.json:
            data = {
                "error": exc.code or type(exc).__name__,
                "message": exc.message,
                "exit": int(exc.exit_code),
            }
            self._err.write(json_line(data) + "\n")
        else:
            self._err.write(f"chatd-cli: {exc.message}\n")
        self._err.flush()
