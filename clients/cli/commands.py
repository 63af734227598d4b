"""The scriptable subcommands: one function each, human output or ``--json`` lines.

Each command connects, does its one thing, and leaves; on the way it delivers whatever an
earlier run left in the outbox.  A change (``new``, ``send``, ``add``, ``leave``,
``rename``) is written to the outbox before it is sent: if the server cannot be reached within
``--timeout`` the command exits with the network code and the change stays queued, to be sent
— once — by the next command that connects.  ``login``/``logout`` use the HTTP routes.
"""

from __future__ import annotations

import asyncio
import getpass
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from clients.cli import attachments, auth, i18n, passwd
from clients.cli.attachments import ProgressBar, human_size, label, type_name
from clients.cli.config import (
    Session,
    forget_session,
    load_session,
    remember_language,
    save_session,
)
from clients.cli.connection import Client
from clients.cli.directory import Directory, display_name
from clients.cli.errors import (
    AuthError,
    Cancelled,
    CliError,
    NetworkError,
    NotFoundError,
    UsageError,
)
from clients.cli.i18n import _, ngettext
from clients.cli.outbox import OutboxEntry, OutboxFile
from clients.cli.protocol import (
    MAX_INT,
    create_fields,
    history_fields,
    send_fields,
)
from clients.cli.render import (
    Output,
    conversation_line,
    event_line,
    fmt_date_time,
    fmt_time,
    quoted,
)
from clients.cli.visible import visible

T = TypeVar("T")
MAX_ATTACHMENTS = 10  # per message (protocol §14)


@dataclass
class Context:
    server: str
    out: Output
    timeout: float

    def session(self) -> Session:
        return load_session(self.server)


def ask(prompt: str) -> bool:
    """A yes/no question on the terminal (stderr, so that ``--json`` output stays clean).
    ``prompt`` ends with ``[y/N]`` (``[o/N]`` in French); both languages' words are yes."""
    sys.stderr.write(prompt)
    sys.stderr.flush()
    answer = sys.stdin.readline()
    return answer.strip().lower() in YES


YES = frozenset({"y", "yes", "o", "oui"})  # French users answer "o"/"oui"


def report_outbox(out: Output) -> Callable[[OutboxEntry, Any, bool], None]:
    """Say what became of changes queued by an earlier run (this run reports its own)."""

    def report(entry: OutboxEntry, result: dict[str, Any] | CliError, mine: bool) -> None:
        if mine:
            return
        what = queued_change(entry)
        if isinstance(result, CliError):
            out.note(
                _("Outbox: {change} — refused: {message}", change=what, message=result.message)
            )
        else:
            seq = str(result["last_seq"])
            out.note(_("Outbox: {change} — delivered (seq {seq}).", change=what, seq=seq))

    return report


def queued_change(entry: OutboxEntry) -> str:
    """A change of the outbox in a few words: ``message to #12``."""
    conv = str(entry.conv)
    match entry.op:
        case "send":
            return _("message to #{conv}", conv=conv)
        case "create":
            return _("new conversation {name}", name=quoted(entry.fields.get("name")))
        case "add":
            return _("addition to #{conv}", conv=conv)
        case "leave":
            return _("leaving #{conv}", conv=conv)
        case "rename":
            return _("renaming of #{conv}", conv=conv)
    return entry.op


async def one_shot(
    ctx: Context,
    body: Callable[[Client, Directory], Awaitable[T]],
    *,
    queued: Callable[[], str] = lambda: "",
    fail_fast: bool = True,
) -> T:
    """Run ``body`` on a fresh client within ``--timeout``, then let the outbox drain.

    ``fail_fast``: a server that refuses the connection ends the command at once (a read has
    nothing to wait for); changes pass False, to wait out a restart within ``--timeout``."""
    session = ctx.session()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + ctx.timeout
    client = Client(session, on_outbox=report_outbox(ctx.out), fail_fast=fail_fast)
    async with client:
        try:
            async with asyncio.timeout_at(deadline):
                result = await body(client, Directory(session.user))
        except TimeoutError:
            seconds = i18n.decimal(ctx.timeout)
            if client.last_error:
                said = _(
                    "No answer from {server} within {seconds} s ({reason}).",
                    server=session.server,
                    seconds=seconds,
                    reason=client.last_error,
                )
            else:
                said = _(
                    "No answer from {server} within {seconds} s.",
                    server=session.server,
                    seconds=seconds,
                )
            raise NetworkError(sentences(said, queued())) from None
        try:  # earlier runs' changes, if any: a best effort within the same time limit
            async with asyncio.timeout_at(max(deadline, loop.time() + 0.5)):
                await client.outbox_drained()
        except TimeoutError:
            pending = len(client.outbox.pending())
            ctx.out.note(
                ngettext(
                    "{n} queued change not delivered yet (chatd-cli outbox).",
                    "{n} queued changes not delivered yet (chatd-cli outbox).",
                    pending,
                )
            )
        return result


def sentences(*said: str) -> str:
    """Sentences one after the other (the empty ones left out)."""
    return " ".join(s for s in said if s)


Build = Callable[[Client, Directory], Awaitable[dict[str, Any]]]


async def change(ctx: Context, op: str, build: Build) -> tuple[dict[str, Any], Directory]:
    """Build one change (resolving logins needs the server), queue it, wait for its answer."""
    submitted: list[OutboxEntry] = []

    async def body(client: Client, who: Directory) -> tuple[dict[str, Any], Directory]:
        entry, done = client.submit(op, await build(client, who))
        submitted.append(entry)
        reply: dict[str, Any] = await done
        return {"op": op, "client_msg_id": entry.client_msg_id, **reply}, who

    def queued() -> str:
        if not submitted:
            return ""
        return _("The change is queued and will be sent by the next chatd-cli command.")

    try:
        return await one_shot(ctx, body, queued=queued, fail_fast=False)
    except AuthError as exc:  # e.g. the session expired: the entry waits for the next login
        exc.message = sentences(exc.message, queued())
        raise
    except asyncio.CancelledError:  # Ctrl-C
        if submitted:
            ctx.out.note(sentences(_("Interrupted."), queued()))
        raise


def fixed(fields: dict[str, Any]) -> Build:
    async def build(client: Client, who: Directory) -> dict[str, Any]:
        return fields

    return build


def parse_tag(args: Any) -> str | None:
    return "important" if args.important else "question" if args.question else None


def read_text(text: str) -> str:
    """``-`` reads the message from standard input (for scripts and long texts)."""
    if text == "-":
        text = sys.stdin.read().rstrip("\n")
    if not text.strip():
        raise UsageError(_("The message is empty."))
    return text


# ----------------------------------------------------------------------------- accounts


async def cmd_login(ctx: Context, args: Any) -> int:
    login_name = args.login
    if not login_name:
        sys.stderr.write(_("Login: "))
        sys.stderr.flush()
        login_name = sys.stdin.readline().strip()
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass(_("Password: "))  # no echo
    answer = auth.login(ctx.server, login_name, password, ctx.timeout)
    session = Session(ctx.server, answer["token"], int(answer["expires_at"]), answer["user"])
    if "language" in session.user:  # the account's choice, if any, from now on
        i18n.follow(session.user["language"])
    if answer.get("password_change_required"):  # a one-time password: choose one's own first
        passwd.after_reset(ctx, session.token, password, from_stdin=args.password_stdin)
    if not answer.get("terms_accepted"):
        version = str(answer.get("terms_version"))
        url = str(answer.get("terms_url") or "")
        if url:
            terms = _(
                "Before first use you must accept the terms of use of {server}, version"
                " {version} (read them at {url}).",
                server=ctx.server,
                version=version,
                url=url,
            )
        else:
            terms = _(
                "Before first use you must accept the terms of use of {server}, version"
                " {version} (your organisation provides their text).",
                server=ctx.server,
                version=version,
            )
        ctx.out.note(terms)
        question = _("Accept the terms of use, version {version}? [y/N] ", version=version)
        if not (args.accept_terms or ask(question)):
            auth.logout(ctx.server, session.token, ctx.timeout)
            raise AuthError(_("The terms of use were not accepted; you are not logged in."))
        auth.accept_terms(ctx.server, session.token, version, ctx.timeout)
    save_session(session)
    user = session.user
    ctx.out.result(
        _(
            "Logged in as {name} ({login}) on {server} until {time}.",
            name=display_name(user),
            login=visible(session.login),
            server=ctx.server,
            time=fmt_date_time(session.expires_at),
        ),
        {"server": ctx.server, "user": user, "expires_at": session.expires_at},
    )
    return 0


async def cmd_logout(ctx: Context, args: Any) -> int:
    try:
        session = ctx.session()
    except AuthError:
        forget_session(ctx.server)  # expired or never there: nothing to revoke
        ctx.out.result(
            _("Logged out of {server}.", server=ctx.server),
            {"server": ctx.server, "revoked": False},
        )
        return 0
    forget_session(ctx.server)  # gone from this machine whatever the server says
    try:
        revoked = auth.logout(ctx.server, session.token, ctx.timeout)
    except NetworkError as exc:
        still = _(
            "The token was deleted here but stays valid on the server until {time}.",
            time=fmt_date_time(session.expires_at),
        )
        raise NetworkError(sentences(exc.message, still)) from None
    except AuthError:
        revoked = False  # already expired or revoked
    ctx.out.result(
        _("Logged out of {server}.", server=ctx.server),
        {"server": ctx.server, "revoked": revoked},
    )
    return 0


async def cmd_whoami(ctx: Context, args: Any) -> int:
    async def body(client: Client, who: Directory) -> int:
        await client.wait_ready()
        assert client.hello is not None
        hello = client.hello
        user = hello.user
        work = ", ".join(visible(x) for x in (user.get("profession"), user.get("structure")) if x)
        until = fmt_date_time(hello.session_expires_at)
        name = display_name(user)
        if work:
            name = f"{name} ({work})"
        ctx.out.result(
            _(
                "{login} — {name} on {server}, session until {time}.",
                login=visible(user.get("login")),
                name=name,
                server=ctx.server,
                time=until,
            ),
            {
                "server": ctx.server,
                "user": user,
                "session_expires_at": hello.session_expires_at,
                "terms_version": hello.terms_version,
                "language": hello.language,
            },
        )
        return 0

    return await one_shot(ctx, body)


async def cmd_language(ctx: Context, args: Any) -> int:
    """Show the language, or set the account's: ``fr``, ``en``, or ``auto`` (none: follow
    the terminal's).  The account's language is chatd-cli's and the server's on every device
    of the account."""
    wanted = args.language

    async def body(client: Client, who: Directory) -> str | None:
        await client.wait_ready()
        assert client.hello is not None
        if wanted is None:
            return client.hello.account_language or None
        reply = await client.request("set_language", language=None if wanted == "auto" else wanted)
        chosen = reply.get("language")
        return chosen if isinstance(chosen, str) else None

    account = await one_shot(ctx, body, fail_fast=wanted is None)
    remember_language(ctx.session(), account)
    spoken = i18n.follow(account)
    name = i18n.language_name(spoken)
    if wanted is None:
        if account is not None:
            said = _("Language: {language}, chosen for your account.", language=name)
        elif i18n.terminal_language() is not None:
            said = _(
                "Language: {language}, your terminal's (your account has none of its own:"
                " chatd-cli language fr or en chooses one).",
                language=name,
            )
        else:
            said = _(
                "Language: {language}, the default (neither your account nor your terminal"
                " chose one: chatd-cli language fr or en chooses one).",
                language=name,
            )
    elif account is not None:
        said = _(
            "Your account's language is now {language}: chatd-cli and the server speak it"
            " on all your devices.",
            language=name,
        )
    else:
        said = _(
            "Your account no longer has a language of its own: chatd-cli follows your"
            " terminal's ({language} here).",
            language=name,
        )
    ctx.out.result(
        said,
        {"server": ctx.server, "language": account, "speaking": spoken},
    )
    return 0


# ----------------------------------------------------------------------------- reads


async def cmd_ls(ctx: Context, args: Any) -> int:
    async def body(client: Client, who: Directory) -> int:
        convs = (await client.request("list"))["conversations"]
        ids: set[int] = set()
        for entry in convs:
            last = entry.get("last") or {}
            ids.update(x for x in (last.get("sender"), last.get("user")) if isinstance(x, int))
        await who.ensure(client, ids)
        if not convs and not ctx.out.json:
            ctx.out.note(_("No conversations yet: chatd-cli new --to LOGIN --subject … TEXT"))
        for entry in convs:
            ctx.out.result(conversation_line(entry, who), entry)
        return 0

    return await one_shot(ctx, body)


async def cmd_history(ctx: Context, args: Any) -> int:
    async def body(client: Client, who: Directory) -> int:
        page = await client.request(
            "history", **history_fields(args.conv, before=args.before, limit=args.limit)
        )
        events = page["events"]
        ids = {e.get("sender") for e in events} | {e.get("user") for e in events}
        await who.ensure(client, (i for i in ids if isinstance(i, int)))
        if page.get("archived") and not ctx.out.json:
            ctx.out.note(_("(older events are archived and no longer served)"))
        for event in events:
            ctx.out.result(event_line(event, who), event)
        if page.get("has_more") and events and not ctx.out.json:
            ctx.out.note(
                _(
                    "(more: chatd-cli history {conv} --before {seq})",
                    conv=str(args.conv),
                    seq=str(events[0]["seq"]),
                )
            )
        return 0

    return await one_shot(ctx, body)


async def cmd_read(ctx: Context, args: Any) -> int:
    async def body(client: Client, who: Directory) -> int:
        seq = MAX_INT if args.seq is None else args.seq  # the server stops at the last seq
        reply = await client.request("read", conv=args.conv, seq=seq)
        said = ngettext(
            "#{conv} read up to seq {seq} ({n} unread).",
            "#{conv} read up to seq {seq} ({n} unread).",
            int(reply["unread"]),
            conv=str(args.conv),
            seq=str(reply["read_seq"]),
        )
        ctx.out.result(said, reply)
        return 0

    return await one_shot(ctx, body)


# ----------------------------------------------------------------------------- changes


def _change_line(reply: dict[str, Any], said: str) -> str:
    """What was done; and whether the server already had it (a change sent again)."""
    if reply.get("duplicate"):
        return sentences(said, _("(Already done: the server had it.)"))
    return said


async def cmd_new(ctx: Context, args: Any) -> int:
    logins = [x for value in args.to for x in value.split(",") if x.strip()]
    if not logins:
        raise UsageError(_("Name at least one participant: --to LOGIN."))
    text = read_text(args.text) if args.text is not None else None

    async def build(client: Client, who: Directory) -> dict[str, Any]:
        members = await who.resolve(client, logins)
        return create_fields(members, args.subject, text, parse_tag(args))

    reply, _who = await change(ctx, "create", build)
    said = _(
        "Created #{conv} {name} (seq {seq}).",
        conv=str(reply["conv"]),
        name=quoted(args.subject),
        seq=str(reply["last_seq"]),
    )
    ctx.out.result(_change_line(reply, said), reply)
    return 0


async def cmd_send(ctx: Context, args: Any) -> int:
    paths = [Path(p) for p in args.attach or []]
    if len(paths) > MAX_ATTACHMENTS:
        raise UsageError(_("At most {n} attachments per message.", n=MAX_ATTACHMENTS))
    sizes = file_sizes(paths)
    if paths:
        text = "" if args.text is None else args.text
        if text == "-":
            text = sys.stdin.read().rstrip("\n")
    else:
        text = read_text("" if args.text is None else args.text)
    # Uploads first, then the message enters the outbox with their ids: a retry re-sends
    # the same ids under the same client_msg_id and never uploads again.
    uploaded = [await upload_one(ctx, path, size) for path, size in zip(paths, sizes, strict=True)]
    fields = send_fields(args.conv, text, parse_tag(args))
    if uploaded:
        fields["attachments"] = [a["id"] for a in uploaded]
    reply, _who = await change(ctx, "send", fixed(fields))
    said = _("Sent to #{conv} (seq {seq}).", conv=str(args.conv), seq=str(reply["last_seq"]))
    line = _change_line(reply, said)
    if uploaded:
        line += "".join(f"\n  {label(a)}" for a in uploaded)
        reply = {**reply, "attachments": uploaded}
    ctx.out.result(line, reply)
    return 0


def file_sizes(paths: list[Path]) -> list[int]:
    """Each file's size; a usage error for one that is not a readable file."""
    sizes = []
    for path in paths:
        if not path.is_file():
            raise UsageError(_("Not a file: {path}.", path=str(path)))
        sizes.append(path.stat().st_size)
    return sizes


def out_dir(name: str) -> Path:
    directory = Path(name)
    if not directory.is_dir():
        raise UsageError(_("Not a directory: {path}.", path=str(directory)))
    return directory


async def upload_one(ctx: Context, path: Path, size: int) -> dict[str, Any]:
    """One upload over HTTP, with a progress bar when a person watches stderr."""
    session = ctx.session()
    bar = None
    if not ctx.out.json and sys.stderr.isatty():
        bar = ProgressBar(path.name, size)
    try:
        return await asyncio.to_thread(
            attachments.upload, session.server, session.token, path, bar, max(ctx.timeout, 1.0)
        )
    finally:
        if bar is not None:
            bar.finish()


async def cmd_get(ctx: Context, args: Any) -> int:
    directory = out_dir(args.out)

    async def body(client: Client, who: Directory) -> dict[str, Any]:
        page = await client.request(
            "history", **history_fields(args.conv, after=args.seq - 1, limit=1)
        )
        events = [e for e in page["events"] if e.get("seq") == args.seq]
        if not events:
            where = {"seq": str(args.seq), "conv": str(args.conv)}
            if page.get("archived"):
                raise NotFoundError(
                    _("There is no event {seq} in #{conv} (it is archived).", **where)
                )
            raise NotFoundError(_("There is no event {seq} in #{conv}.", **where))
        event: dict[str, Any] = events[0]
        return event

    event = await one_shot(ctx, body)
    files = [a for a in event.get("attachments") or [] if isinstance(a, dict)]
    where = {"seq": str(args.seq), "conv": str(args.conv)}
    if not files:
        if event.get("kind") == "message":
            raise NotFoundError(_("The message {seq} of #{conv} has no attachments.", **where))
        raise NotFoundError(
            _("The event {seq} of #{conv} is not a message: it has no attachments.", **where)
        )
    if args.index is not None:
        if args.index > len(files):
            raise NotFoundError(
                ngettext(
                    "The message {seq} of #{conv} has {n} attachment, not {index}.",
                    "The message {seq} of #{conv} has {n} attachments, not {index}.",
                    len(files),
                    index=args.index,
                    **where,
                )
            )
        files = [files[args.index - 1]]
    if args.thumbnail:
        files = [a for a in files if a.get("thumbnail")]
        if not files:
            raise NotFoundError(_("No thumbnail: only images have one."))
    session = ctx.session()
    for attachment in files:
        path = await asyncio.to_thread(
            attachments.download,
            session.server,
            session.token,
            attachment,
            directory,
            thumbnail=args.thumbnail,
            timeout=max(ctx.timeout, 1.0),
        )
        size = path.stat().st_size
        ctx.out.result(
            _(
                "Saved {path} ({type}, {size}).",
                path=str(path),
                type=type_name(attachment.get("mime")),
                size=human_size(size),
            ),
            {
                **attachment,
                "path": str(path),
                "saved_bytes": size,
                "thumbnail_file": args.thumbnail,
            },
        )
    return 0


async def cmd_add(ctx: Context, args: Any) -> int:
    added: list[int] = []

    async def build(client: Client, who: Directory) -> dict[str, Any]:
        added[:] = await who.resolve(client, [args.user])
        return {"conv": args.conv, "user": added[0]}

    reply, who = await change(ctx, "add", build)
    said = _(
        "Added {name} to #{conv} (seq {seq}).",
        name=who.name_with_structure(added[0]),
        conv=str(args.conv),
        seq=str(reply["last_seq"]),
    )
    ctx.out.result(_change_line(reply, said), reply)
    return 0


async def cmd_leave(ctx: Context, args: Any) -> int:
    question = _(
        "Leave conversation #{conv}? You will no longer see its new messages. [y/N] ",
        conv=str(args.conv),
    )
    if not args.yes and not ask(question):
        raise Cancelled(_("Not left."))
    reply, _who = await change(ctx, "leave", fixed({"conv": args.conv}))
    said = _("You left #{conv} (seq {seq}).", conv=str(args.conv), seq=str(reply["last_seq"]))
    ctx.out.result(_change_line(reply, said), reply)
    return 0


async def cmd_rename(ctx: Context, args: Any) -> int:
    reply, _who = await change(ctx, "rename", fixed({"conv": args.conv, "name": args.name}))
    said = _(
        "Renamed #{conv} to {name} (seq {seq}).",
        conv=str(args.conv),
        name=quoted(args.name),
        seq=str(reply["last_seq"]),
    )
    ctx.out.result(_change_line(reply, said), reply)
    return 0


async def cmd_outbox(ctx: Context, args: Any) -> int:
    session = ctx.session()
    if args.send:

        async def body(client: Client, who: Directory) -> None:
            await client.outbox_drained()

        await one_shot(ctx, body, fail_fast=False)
    entries = OutboxFile.of(session.server, session.user_id).pending()
    if not entries and not ctx.out.json:
        ctx.out.note(_("The outbox is empty."))
    for e in entries:
        detail = str(e.fields.get("text") or e.fields.get("name") or e.fields.get("user") or "")
        if e.fields.get("attachments"):
            count = len(e.fields["attachments"])
            more = ngettext("(+{n} attachment)", "(+{n} attachments)", count)
            detail = f"{detail} {more}".strip()
        what = {"time": fmt_time(e.queued_at), "change": queued_change(e)}
        ctx.out.result(
            _("{time} {change}: {detail}", detail=detail, **what)
            if detail
            else _("{time} {change}", **what),
            {"client_msg_id": e.client_msg_id, "op": e.op, **e.fields, "queued_at": e.queued_at},
        )
    return 0
