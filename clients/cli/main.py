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

Every word is in chatd-cli's language (:mod:`clients.cli.i18n`), argparse's own included: it is
chosen before the parser is built, from the account's setting cached for the current server,
else the terminal's language, else French.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from chatd.argparse_words import speaking
from clients.cli import commands, i18n, passwd, sessions, watch
from clients.cli.config import DEFAULT_SERVER, ENV_SERVER, cached_user, current_server
from clients.cli.errors import CliError, ExitCode
from clients.cli.i18n import _
from clients.cli.protocol import MAX_INT
from clients.cli.render import Output

Handler = Callable[[commands.Context, Any], Awaitable[int]]


def conv_ref(text: str) -> int:
    """A conversation reference: its number, as ``ls`` shows it (``88`` or ``#88``)."""
    try:
        conv = int(text.removeprefix("#"))
    except ValueError:
        conv = 0
    if conv < 1:
        raise argparse.ArgumentTypeError(_("not a conversation number: {text}", text=repr(text)))
    return conv


def bounded(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                _("not a whole number: {text}", text=repr(text))
            ) from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(_("must be from {low} to {high}", low=low, high=high))
        return value

    return parse


positive = bounded(1, MAX_INT)


def seconds(text: str) -> float:
    """``--timeout``: a number of seconds above 0 (``15``, ``0.5``)."""
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(
            _("not a number of seconds above 0: {text}", text=repr(text))
        )
    return value


def _common() -> argparse.ArgumentParser:
    """Options accepted before or after the command (``chatd-cli --json ls``, ``ls --json``)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--server",
        default=argparse.SUPPRESS,
        metavar="URL",
        help=_(
            "server URL (default: ${variable}, else the last login's, else {default})",
            variable=ENV_SERVER,
            default=DEFAULT_SERVER,
        ),
    )
    common.add_argument(
        "--json",
        action="store_true",
        default=argparse.SUPPRESS,
        help=_("one JSON object per line"),
    )
    common.add_argument(
        "--timeout",
        type=seconds,
        default=argparse.SUPPRESS,
        metavar=_("SECONDS"),
        help=_("seconds to reach the server and get an answer (default 15)"),
    )
    return common


def _tag_options(parser: argparse.ArgumentParser) -> None:
    tags = parser.add_mutually_exclusive_group()
    tags.add_argument("--important", action="store_true", help=_("mark it important (!)"))
    tags.add_argument("--question", action="store_true", help=_("mark it as a question (?)"))


def build_parser() -> argparse.ArgumentParser:
    """The command line, in chatd-cli's language as it is now (choose it first)."""
    common = _common()
    parser = argparse.ArgumentParser(
        prog="chatd-cli",
        parents=[common],
        description=_("Terminal client of chatd. See docs/cli.md."),
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar=_("COMMAND"))
    conv_metavar, login_metavar, seq_metavar = _("CONV"), _("LOGIN"), _("SEQ")

    def command(name: str, handler: Handler, help_: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, parents=[common], help=help_, description=help_)
        p.set_defaults(handler=handler)
        return p

    conv_help = _("a conversation's number, as ls shows it (88 or #88)")

    def conv(p: argparse.ArgumentParser) -> None:
        p.add_argument("conv", type=conv_ref, metavar=conv_metavar, help=conv_help)

    rule = _(passwd.RULE)
    p = command("login", commands.cmd_login, _("log in (password prompted, not echoed)"))
    p.add_argument(
        "login", nargs="?", metavar=login_metavar, help=_("login name (prompted if absent)")
    )
    p.add_argument("--password-stdin", action="store_true", help=_("read the password from stdin"))
    p.add_argument("--accept-terms", action="store_true", help=_("accept the terms without asking"))
    p.description = " ".join(
        (
            _(
                "Log in (password prompted, not echoed). After a password reset by an"
                " administrator, log in with the one-time password: you are then asked for a"
                " new password (with --password-stdin, on the next line of stdin)."
            ),
            rule,
        )
    )
    command("logout", commands.cmd_logout, _("log out: revoke the token and forget it"))
    p = command("passwd", passwd.cmd_passwd, _("change your password; your other sessions end"))
    p.add_argument(
        "--password-stdin",
        action="store_true",
        help=_("read the current password, then the new one, from the first two lines of stdin"),
    )
    p.description = " ".join(
        (
            _(
                "Change your password: the current one, then the new one twice (never echoed)."
                " Your other sessions are closed; this one stays open."
            ),
            rule,
        )
    )
    p = command(
        "sessions",
        sessions.cmd_sessions,
        _("list your sessions (one per device); revoke ID or --all ends them"),
    )
    p.add_argument(
        "action",
        nargs="?",
        choices=sessions.ACTIONS,
        metavar="revoke",
        help=_("end a session (ID) or all your other sessions (--all)"),
    )
    p.add_argument("id", nargs="?", metavar="ID", help=_("a session's ID, as the list shows it"))
    p.add_argument("--all", action="store_true", help=_("every session but this one"))
    command("whoami", commands.cmd_whoami, _("who is logged in, on which server, until when"))
    p = command(
        "language",
        commands.cmd_language,
        _("show the language, or choose your account's (auto: your terminal's)"),
    )
    p.add_argument(
        "language",
        nargs="?",
        choices=("fr", "en", "auto"),
        metavar="fr|en|auto",
        help=_(
            "fr: French, en: English, for chatd-cli and the server's sentences, on all your"
            " devices; auto: follow each terminal's language"
        ),
    )
    command("ls", commands.cmd_ls, _("list conversations with unread counts"))

    p = command("new", commands.cmd_new, _("start a conversation"))
    p.add_argument(
        "--to", action="append", required=True, metavar=login_metavar, help=_("participant")
    )
    p.add_argument(
        "--subject", required=True, metavar=_("SUBJECT"), help=_("the conversation's name")
    )
    p.add_argument(
        "text", nargs="?", metavar=_("TEXT"), help=_("a first message ('-' reads stdin)")
    )
    _tag_options(p)

    p = command("send", commands.cmd_send, _("post a message, with files if you like"))
    conv(p)
    p.add_argument(
        "text",
        nargs="?",
        metavar=_("TEXT"),
        help=_("the message ('-' reads stdin); may be absent with --attach"),
    )
    p.add_argument(
        "--attach",
        action="append",
        metavar=_("FILE"),
        help=_("attach this file (repeatable, 10 max)"),
    )
    _tag_options(p)

    p = command("get", commands.cmd_get, _("download the attachments of a message"))
    conv(p)
    p.add_argument(
        "seq",
        type=positive,
        metavar=seq_metavar,
        help=_("the message's seq (history shows it)"),
    )
    directory = _("DIR")
    p.add_argument(
        "--out",
        default=".",
        metavar=directory,
        help=_("save into {directory} (default: here)", directory=directory),
    )
    p.add_argument(
        "--index",
        type=bounded(1, 10),
        metavar="N",
        help=_("only its Nth attachment (from 1)"),
    )
    p.add_argument("--thumbnail", action="store_true", help=_("the images' thumbnails instead"))

    p = command("history", commands.cmd_history, _("show a conversation's events"))
    conv(p)
    p.add_argument("--before", type=positive, metavar=seq_metavar, help=_("events before this seq"))
    p.add_argument(
        "--limit",
        type=bounded(1, 100),
        default=50,
        metavar="N",
        help=_("at most this many (1-100)"),
    )

    p = command("add", commands.cmd_add, _("add a participant"))
    conv(p)
    p.add_argument("user", metavar=login_metavar)

    p = command("leave", commands.cmd_leave, _("leave a conversation"))
    conv(p)
    p.add_argument("--yes", "-y", action="store_true", help=_("do not ask for confirmation"))

    p = command("rename", commands.cmd_rename, _("rename a conversation"))
    conv(p)
    p.add_argument("name", metavar=_("NAME"))

    p = command("read", commands.cmd_read, _("mark a conversation read"))
    conv(p)
    p.add_argument(
        "--seq",
        type=bounded(0, MAX_INT),
        metavar=seq_metavar,
        help=_("up to this seq (default: all)"),
    )

    p = command("watch", watch.cmd_watch, _("print events as they arrive, until Ctrl-C"))
    p.add_argument("--conv", type=conv_ref, metavar=conv_metavar, help=_("only this conversation"))

    p = command("chat", _chat, _("interactive view of a conversation"))
    conv(p)

    p = command("outbox", commands.cmd_outbox, _("show changes not yet delivered"))
    p.add_argument("--send", action="store_true", help=_("connect and deliver them first"))
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


def _server_option(argv: list[str]) -> str | None:
    """``--server URL`` (or ``--server=URL``) of the command line, read before it is parsed."""
    for index, arg in enumerate(argv):
        if arg == "--server" and index + 1 < len(argv):
            return argv[index + 1]
        if arg.startswith("--server="):
            return arg.partition("=")[2]
    return None


def choose_language(argv: list[str]) -> None:
    """Speak the account's language (cached with the session of the server this command will
    use), else the terminal's, else French — argparse too, so before the parser is built.
    Never fails: a command line or a cache it cannot read is the parser's or the command's to
    report."""
    account = None
    # A --server that is not a URL: said by the command, in the terminal's language.
    with contextlib.suppress(CliError):
        account = (cached_user(current_server(_server_option(argv))) or {}).get("language")
    i18n.follow(account)


def main(argv: list[str] | None = None) -> int:
    honour_ctrl_c()
    choose_language(sys.argv[1:] if argv is None else argv)
    with speaking(i18n.VOICE):  # argparse's own words too (usage, options, its errors)
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
