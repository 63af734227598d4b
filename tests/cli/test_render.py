"""Human lines (the protocol's "shown as") and error → exit code mapping."""

from __future__ import annotations

import datetime
import io
import json

from clients.cli.directory import Directory
from clients.cli.errors import ExitCode, close_error, server_error
from clients.cli.render import Output, conversation_line, event_line, fmt_time


def directory() -> Directory:
    who = Directory({"id": 1, "first_name": "Claire", "last_name": "Dupont"})
    who._remember({"id": 2, "first_name": "Paul", "last_name": "Martin", "structure": "Port"})
    return who


def ev(seq: int, kind: str, **fields: object) -> dict[str, object]:
    return {"conv": 8, "seq": seq, "kind": kind, "sender": 1, "ts": None, **fields}


def test_event_lines() -> None:
    who = directory()
    assert event_line(ev(2, "message", text="a\nb", tag="important"), who) == (
        "[2] --:-- ! Claire Dupont: a\n" + " " * 12 + "b"  # under the text's column
    )
    assert event_line(ev(3, "message", text="?", tag="question"), who).startswith("[3] --:-- ? ")
    assert event_line(ev(4, "message", text="x", tag=None), who).endswith("   Claire Dupont: x")
    created = event_line(ev(1, "created", name="Suivi"), who)
    assert created.endswith("* Claire Dupont created « Suivi »")
    assert event_line(ev(5, "joined", user=2), who).endswith("Claire Dupont added Paul Martin")
    assert event_line(ev(6, "left", user=1), who).endswith("Claire Dupont left the conversation")
    assert event_line(ev(7, "renamed", name="N"), who).endswith("renamed the conversation « N »")
    assert event_line(ev(8, "poll"), who).endswith("(poll event)")  # a later kind: neutral
    assert event_line(ev(9, "joined", user=99), who).endswith("added user 99")
    assert who.name_with_structure(2) == "Paul Martin (Port)"


def test_times_and_conversation_lines() -> None:
    noon = datetime.datetime(2026, 1, 2, 12, 30)
    ts = int(noon.timestamp() * 1000)
    assert fmt_time(ts, today=noon.date()) == "12:30"
    assert fmt_time(ts, today=datetime.date(2026, 1, 3)) == "02/01/2026, 12:30"
    entry = {"conv": 8, "name": "Suivi", "member": False, "unread": 2, "last": ev(3, "left")}
    line = conversation_line(entry, directory())
    assert line.startswith("#8      Suivi (left)") and "2 unread" in line
    assert line.endswith("* Claire Dupont left the conversation")


def test_errors_map_to_exit_codes() -> None:
    assert server_error("token_expired", "x").exit_code == ExitCode.AUTH
    assert "please log in again" in server_error("token_expired", "x").message
    assert server_error("conversation_not_found", "x").exit_code == ExitCode.NOT_FOUND
    assert server_error("not_a_member", "x").exit_code == ExitCode.NOT_FOUND
    assert server_error("unavailable", "x").exit_code == ExitCode.NETWORK
    assert server_error("already_member", "x").exit_code == ExitCode.FAILED
    closed = close_error(4003)
    assert closed is not None and closed.exit_code == ExitCode.AUTH
    assert close_error(1012) is None and close_error(4005) is None
    err = io.StringIO()
    Output(True, io.StringIO(), err).error(server_error("user_not_found", "No such user."))
    assert json.loads(err.getvalue()) == {
        "error": "user_not_found",
        "exit": 4,
        "message": "No such user.",
    }
