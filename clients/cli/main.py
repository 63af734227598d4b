"""``chatd-cli``: the command line — arguments, dispatch, exit codes.

====  ===============================================================================
0     success (also: ``watch`` or ``chat`` ended by Ctrl-C / ``/quit``)
1     the server refused the change (invalid, already a member…), or it was cancelled
2     bad usage
3     authentication: not logged in, session expired or logged out, terms, bad password
4     not found or forbidden: no such conversation or user, or no longer a member
5     network: the server could not be reached or did not answer within ``--timeout``
130   interrupted (Ctrl-C during a one-shot command)
====  ===============================================================================

Errors are one sentence on stderr (a JSON object with ``--json``), never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from clients.cli import commands, passwd, watch
from clients.cli.config import DEFAULT_SERVER, ENV_SERVER, current_server
from clients.cli.errors import CliError, ExitCode
from clients.cli.protocol import MAX_INT
from clients.cli.render import Output

Handler = Callable[[commands.Context, Any], Awaitable[int]]


def conv_ref(text: str) -> int:
    """A conversation reference: its number, as ``ls`` shows it (``88`` or ``#88``)."""
    try:
        conv = int(text.removeprefix("#"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a conversation number: {text!r}") from None
    if conv < 1:
        raise argparse.ArgumentTypeError(f"not a conversation number: {text!r}")
    return conv


def bounded(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be from {low} to {high}")
        return value

    return parse


positive = bounded(1, MAX_INT)


def _common() -> argparse.ArgumentParser:
    """Options accepted before or after the command (``chatd-cli --json ls``, ``ls --json``)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--server",
        default=argparse.SUPPRESS,
        help=f"server URL (default: ${ENV_SERVER}, else the last login's, else {DEFAULT_SERVER})",
    )
    common.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="one JSON object per line"
    )
    common.add_argument(
        "--timeout",
        type=float,
        default=argparse.SUPPRESS,
        help="seconds to reach the server and get an answer (default 15)",
    )
    return common


def _tag_options(parser: argparse.ArgumentParser) -> None:
    tags = parser.add_mutually_exclusive_group()
    tags.add_argument("--important", action="store_true", help="mark it important (!)")
    tags.add_argument("--question", action="store_true", help="mark it as a question (?)")


def build_parser() -> argparse.ArgumentParser:
    common = _common()
    parser = argparse.ArgumentParser(
        prog="chatd-cli",
        parents=[common],
        description="Terminal client of chatd. See docs/cli.md.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, handler: Handler, help_: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, parents=[common], help=help_, description=help_)
        p.set_defaults(handler=handler)
        return p

    p = command("login", commands.cmd_login, "log in (password prompted, not echoed)")
    p.add_argument("login", nargs="?", help="login name (prompted if absent)")
    p.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    p.add_argument("--accept-terms", action="store_true", help="accept the terms without asking")
    p.description = (
        "Log in (password prompted, not echoed). After a password reset by an administrator,"
        " log in with the one-time password: you are then asked for a new password (with"
        " --password-stdin, on the next line of stdin). " + passwd.RULE
    )
    command("logout", commands.cmd_logout, "log out: revoke the token and forget it")
    p = command("passwd", passwd.cmd_passwd, "change your password; your other sessions end")
    p.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the current password, then the new one, from the first two lines of stdin",
    )
    p.description = (
        "Change your password: the current one, then the new one twice (never echoed). Your"
        " other sessions are closed; this one stays open. " + passwd.RULE
    )
    command("whoami", commands.cmd_whoami, "who is logged in, on which server, until when")
    command("ls", commands.cmd_ls, "list conversations with unread counts")

    p = command("new", commands.cmd_new, "start a conversation")
    p.add_argument("--to", action="append", required=True, metavar="LOGIN", help="participant")
    p.add_argument("--subject", required=True, help="the conversation's name")
    p.add_argument("text", nargs="?", help="a first message ('-' reads stdin)")
    _tag_options(p)

    p = command("send", commands.cmd_send, "post a message, with files if you like")
    p.add_argument("conv", type=conv_ref, metavar="CONV")
    p.add_argument(
        "text", nargs="?", help="the message ('-' reads stdin); may be absent with --attach"
    )
    p.add_argument(
        "--attach", action="append", metavar="FILE", help="attach this file (repeatable, 10 max)"
    )
    _tag_options(p)

    p = command("get", commands.cmd_get, "download the attachments of a message")
    p.add_argument("conv", type=conv_ref, metavar="CONV")
    p.add_argument("seq", type=positive, metavar="SEQ", help="the message's seq (history shows it)")
    p.add_argument("--out", default=".", metavar="DIR", help="save into DIR (default: here)")
    p.add_argument(
        "--index", type=bounded(1, 10), metavar="N", help="only its Nth attachment (from 1)"
    )
    p.add_argument("--thumbnail", action="store_true", help="the images' thumbnails instead")

    p = command("history", commands.cmd_history, "show a conversation's events")
    p.add_argument("conv", type=conv_ref, metavar="CONV")
    p.add_argument("--before", type=positive, metavar="SEQ", help="events before this seq")
    p.add_argument("--limit", type=bounded(1, 100), default=50, help="at most this many (1-100)")

    p = command("add", commands.cmd_add, "add a participant")
    p.add_argument("conv", type=conv_ref, metavar="CONV")
    p.add_argument("user", metavar="LOGIN")

    p = command("leave", commands.cmd_leave, "leave a conversation")
    p.add_argument("conv", type=conv_ref, metavar="CONV")
    p.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")

    p = command("rename", commands.cmd_rename, "rename a conversation")
    p.add_argument("conv", type=conv_ref, metavar="CONV")
    p.add_argument("name")

    p = command("read", commands.cmd_read, "mark a conversation read")
    p.add_argument("conv", type=conv_ref, metavar="CONV")
    p.add_argument("--seq", type=bounded(0, MAX_INT), help="up to this seq (default: all)")

    p = command("watch", watch.cmd_watch, "print events as they arrive, until Ctrl-C")
    p.add_argument("--conv", type=conv_ref, help="only this conversation")

    p = command("chat", _chat, "interactive view of a conversation")
    p.add_argument("conv", type=conv_ref, metavar="CONV")

    p = command("outbox", commands.cmd_outbox, "show changes not yet delivered")
    p.add_argument("--send", action="store_true", help="connect and deliver them first")
    return parser


async def _chat(ctx: commands.Context, args: Any) -> int:
    from clients.cli.chat import cmd_chat  # prompt_toolkit is loaded only for the chat view

    code: int = await cmd_chat(ctx, args)
    return code


def honour_ctrl_c() -> None:
    """Ctrl-C (SIGINT) stops chatd-cli however it was started.

    A process inherits an *ignored* SIGINT from a non-interactive shell that ran it, or its
    parent, in the background (``cmd &`` in a script, CI runners, ``nohup``).  Python keeps
    that disposition, and ``asyncio.run`` then installs no handler: ``watch`` ignored Ctrl-C
    for ever (the "20 s after Ctrl-C" failures of the test suite run from such a shell).
    A person or a script that sends SIGINT means "stop": restore Python's handler."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def main(argv: list[str] | None = None) -> int:
    honour_ctrl_c()
    args = build_parser().parse_args(argv)
    out = Output(getattr(args, "json", False))
    try:
        ctx = commands.Context(
            current_server(getattr(args, "server", None)), out, getattr(args, "timeout", 15.0)
        )
        code: int = asyncio.run(args.handler(ctx, args))
        return code
    except CliError as exc:
        out.error(exc)
        return int(exc.exit_code)
    except KeyboardInterrupt:
        return 0 if args.command in ("watch", "chat") else int(ExitCode.INTERRUPTED)
    except BrokenPipeError:  # `chatd-cli history 12 | head`: the reader left, not an error
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
