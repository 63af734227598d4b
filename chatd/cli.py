"""``chatd`` admin command line: init, serve, verify, keys, retention, store, users, audit.

Every change an operator makes (accounts, keys, retention, the epoch) is recorded in the
administrators' audit log under their OS account (:func:`~chatd.services.maintenance.os_operator`),
through the services; ``chatd audit`` shows it.

Each sub-command is a small function over :class:`~chatd.config.Settings`; errors become one
line on stderr and a distinct exit code, never a traceback:

====  =====================================================
0     success
1     ``verify`` found a problem / dry-run found work to do
2     bad usage or invalid configuration
3     key file problem
4     database problem (migration, integrity, unavailable)
5     a running server holds the database (``keys rotate``/``retire``, ``store new-epoch``,
      a second ``serve``)
6     the database file is damaged (``database damaged: …``): restore a backup
====  =====================================================

Every command that opens the store closes what it opened when the open fails, so a damaged
database ends the command with its one line and code 6, never a traceback nor a hang.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import uvloop

from chatd.admin_voice import ADMIN, admin_language
from chatd.argparse_words import speaking
from chatd.config import Settings
from chatd.core.accounts import check_account_fields
from chatd.core.audit import ActionKind, ActorKind, AuditEntry, AuditQuery
from chatd.core.clock import wall_clock_ms
from chatd.core.errors import (
    ChatdError,
    ConfigError,
    DatabaseDamaged,
    IntegrityError,
    KeyFileError,
    ValidationError,
    WeakPasswordError,
)
from chatd.core.password_policy import check_password, rule
from chatd.core.records import NewUser, User, UserProfile, VerifyProblem, VerifyReport
from chatd.crypto.keyring import KeyRing, load_key_file, write_key_file
from chatd.i18n import LANGUAGES, N_
from chatd.services.accounts import AccountAdmin
from chatd.services.maintenance import Maintenance, os_operator
from chatd.store.sqlite.lock import ServerLock, ServerRunningError
from chatd.wiring import attachment_files, build_gateway, open_store, running

EXIT_PROBLEM, EXIT_USAGE, EXIT_KEYS, EXIT_DATABASE, EXIT_BUSY, EXIT_DAMAGED = 1, 2, 3, 4, 5, 6
MS_PER_YEAR = 365.25 * 24 * 3600 * 1000

# Every line for the operator is said in the admin command's language (chatd.admin_voice).
_ = ADMIN
ngettext = ADMIN.ngettext
KEY_FILE_CREATED = N_("Created key file {path} (mode 0600). Back it up: without it nothing opens.")


def _out(args: argparse.Namespace, human: str, data: object) -> None:
    print(json.dumps(data) if getattr(args, "json", False) else human)


# ----------------------------------------------------------------------------- commands


async def cmd_init(settings: Settings, args: argparse.Namespace) -> int:
    path = settings.store.key_file_path
    if path.exists():
        load_key_file(path)  # refuse a bad file loudly even when not creating one
        print(_("Key file {path} already exists; kept.", path=str(path)))
    else:
        write_key_file(path, KeyRing.generate(), replace=False)
        print(_(KEY_FILE_CREATED, path=str(path)))
    async with open_store(settings):
        pass
    print(_("Database {path} is ready.", path=str(settings.store.database_path)))
    return 0


async def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    from chatd.gateway.server import serve  # the web stack is only imported to serve

    path = settings.store.key_file_path
    if not path.exists():
        write_key_file(path, KeyRing.generate(), replace=False)
        print(_(KEY_FILE_CREATED, path=str(path)))
    with ServerLock(settings.store.database_path, N_("start another server")):
        async with running(settings) as process:
            await serve(settings, build_gateway(process))
    return 0


async def cmd_verify(settings: Settings, args: argparse.Namespace) -> int:
    try:
        async with open_store(settings) as store:
            # The store's row audit, then the attachment service's file audit.
            report = await attachment_files(settings, store).verify()
    except DatabaseDamaged as exc:
        # A database that does not even open is still reported as verify reports (the JSON
        # stays one object), with the exit code of a damaged database.
        _say_verify(args, VerifyReport(0, 0, (VerifyProblem(0, 0, exc.text),)))
        return EXIT_DAMAGED
    except IntegrityError as exc:
        # A sealed row the store needs at open (a directory or audit key) does not open:
        # tampering or damage that verify exists to report, as a problem, not as a failure.
        return _say_verify(args, VerifyReport(0, 0, (VerifyProblem(0, 0, exc.text),)))
    return _say_verify(args, report)


def _say_verify(args: argparse.Namespace, report: VerifyReport) -> int:
    for problem in report.problems:
        print(_("BROKEN {problem}", problem=problem.said(ADMIN.lang)), file=sys.stderr)
    for warning in report.warnings:
        print(_("WARNING {warning}", warning=warning.render(ADMIN.lang)), file=sys.stderr)
    broken = len(report.problems)
    _out(
        args,
        _(
            "{conversations}, {events}, {attachments} checked: {verdict}",
            conversations=ngettext("{n} conversation", "{n} conversations", report.conversations),
            events=ngettext("{n} event", "{n} events", report.events),
            attachments=ngettext("{n} attachment", "{n} attachments", report.attachments),
            verdict=_("OK") if report.ok else ngettext("{n} broken", "{n} broken", broken),
        ),
        {
            "conversations": report.conversations,
            "events": report.events,
            "attachments": report.attachments,
            "admin_actions": report.admin_actions,
            "problems": [
                {"conv": p.conv_id, "seq": p.seq, "user": p.user_id, "reason": p.reason}
                | ({} if p.audit_seq is None else {"audit_record": p.audit_seq})
                for p in report.problems
            ],
            "warnings": [str(warning) for warning in report.warnings],  # English
        },
    )
    return 0 if report.ok else EXIT_PROBLEM


async def cmd_keys_rotate(settings: Settings, args: argparse.Namespace) -> int:
    path = settings.store.key_file_path
    with ServerLock(settings.store.database_path, N_("rotate the master key")):
        old = load_key_file(path)
        new = old.with_new_active()
        # The file first: if we crash after it, the old KEK is still in it and all opens.
        write_key_file(path, new, replace=True)
        async with open_store(settings, new) as store:
            count = await Maintenance(store).rewrap_data_keys(new, by=os_operator())
    print(
        ngettext(
            "New active key {key}; {n} data key re-wrapped.",
            "New active key {key}; {n} data keys re-wrapped.",
            count,
            key=new.active_id,
        )
    )
    print(_("Retire the previous key with: chatd keys retire {key}", key=old.active_id))
    return 0


async def cmd_keys_retire(settings: Settings, args: argparse.Namespace) -> int:
    path = settings.store.key_file_path
    with ServerLock(settings.store.database_path, N_("retire a master key")):
        return await _retire_locked(settings, args, path)


async def _retire_locked(settings: Settings, args: argparse.Namespace, path: Path) -> int:
    ring = load_key_file(path)
    async with open_store(settings, ring) as store:
        in_use = await store.kek_ids_in_use()
        if args.key_id in in_use:
            print(
                _(
                    "Key {key} still wraps data keys; run 'chatd keys rotate' first.",
                    key=args.key_id,
                ),
                file=sys.stderr,
            )
            return EXIT_KEYS
        retired = ring.without(args.key_id)  # refuses the active key and an unknown one
        # The record first: a retirement never goes unrecorded (see services.maintenance).
        await Maintenance(store).record_key_retired(args.key_id, by=os_operator())
    write_key_file(path, retired, replace=True)
    print(_("Key {key} retired.", key=args.key_id))
    return 0


async def cmd_keys_list(settings: Settings, args: argparse.Namespace) -> int:
    ring = load_key_file(settings.store.key_file_path)
    async with open_store(settings, ring) as store:
        in_use = await store.kek_ids_in_use()
    for kid in ring.keys:
        flags = [
            flag
            for flag, on in ((_("active"), kid == ring.active_id), (_("in use"), kid in in_use))
            if on
        ]
        print(f"{kid}  {', '.join(flags)}")
    return 0


async def cmd_retention_run(settings: Settings, args: argparse.Namespace) -> int:
    cutoff = int(wall_clock_ms() - settings.store.retention_years * MS_PER_YEAR)
    async with open_store(settings) as store:
        expired = await store.expired_conversations(cutoff)
        if args.apply:
            files, maintenance = attachment_files(settings, store), Maintenance(store)
            actor = os_operator()
            for conv_id in expired:
                # Keys first (the store), then the files they opened (the attachment service).
                await files.delete_files(await maintenance.shred_conversation(conv_id, by=actor))
    ids = ", ".join(str(conv_id) for conv_id in expired)
    if not expired:
        said = _("No conversation is past the retention period.")
    elif args.apply:
        said = ngettext(
            "Shredded {n} conversation: {ids}",
            "Shredded {n} conversations: {ids}",
            len(expired),
            ids=ids,
        )
    else:
        said = ngettext(
            "Would shred {n} conversation: {ids}",
            "Would shred {n} conversations: {ids}",
            len(expired),
            ids=ids,
        )
    _out(
        args,
        said,
        {"applied": bool(args.apply), "conversations": expired},
    )
    return 0 if args.apply or not expired else EXIT_PROBLEM


async def cmd_store_new_epoch(settings: Settings, args: argparse.Namespace) -> int:
    # A running server would go on announcing the epoch it read at start: refuse while one
    # holds the database, as for a key rotation.
    with ServerLock(settings.store.database_path, N_("declare a new store epoch")):
        async with open_store(settings) as store:
            epoch = await Maintenance(store).declare_new_epoch(by=os_operator())
    _out(args, _("New store epoch: {epoch}", epoch=epoch), {"epoch": epoch})
    return 0


async def cmd_user_add(settings: Settings, args: argparse.Namespace) -> int:
    profile = UserProfile(
        first_name=args.first_name,
        last_name=args.last_name,
        profession=args.profession,
        structure=args.structure,
        email=args.email,
        rpps=args.rpps,
    )
    # Before the password prompt: a refused field is said before anything is typed (the
    # service checks again, for every other caller).
    check_account_fields(args.login, profile)
    password = _ask_password(args.login, (args.first_name, args.last_name))
    async with running(settings) as process:
        accounts = process.services.accounts
        password_hash = await accounts.hash_password(password)
        user = await accounts.create(
            NewUser(args.login, password_hash, profile, language=args.language), by=os_operator()
        )
    _out(
        args,
        _("Created user {id} ({login}).", id=str(user.id), login=user.login),
        {"id": user.id, "login": user.login, "language": user.language},
    )
    return 0


async def cmd_user_list(settings: Settings, args: argparse.Namespace) -> int:
    async with running(settings) as process:
        users = await process.services.accounts.list()
    for user in users:
        p = user.profile
        line = f"{user.id:>5}  {user.login:<20} {user.language or '-':<3} {profile_line(p)}"
        if user.disabled:
            line += "  " + _("[disabled]")
        _out(
            args,
            line,
            {
                "id": user.id,
                "login": user.login,
                "language": user.language,
                "first_name": p.first_name,
                "last_name": p.last_name,
                "profession": p.profession,
                "structure": p.structure,
                "email": p.email,
                "rpps": p.rpps,
                "disabled": user.disabled,
            },
        )
    return 0


def profile_line(p: UserProfile) -> str:
    """``Claire Dupont, infirmière (CH de Grasse)``, leaving out what is empty."""
    line = f"{p.first_name} {p.last_name}".strip()
    if p.profession:
        line += f", {p.profession}"
    if p.structure:
        line += f" ({p.structure})"
    return line


async def _named_user(accounts: AccountAdmin, login: str) -> User | None:
    """The account named ``login``, or None after saying there is none."""
    user = await accounts.find(login)
    if user is None:
        print(_("No user '{login}'.", login=login), file=sys.stderr)
    return user


async def cmd_user_disable(settings: Settings, args: argparse.Namespace) -> int:
    async with running(settings) as process:
        accounts = process.services.accounts
        user = await _named_user(accounts, args.login)
        if user is None:
            return EXIT_PROBLEM
        await accounts.set_disabled(user, not args.enable, by=os_operator())
    if args.enable:
        print(_("User {login} enabled.", login=user.login))
    else:
        print(_("User {login} disabled.", login=user.login))
    return 0


async def cmd_user_reset_password(settings: Settings, args: argparse.Namespace) -> int:
    async with running(settings) as process:
        accounts = process.services.accounts
        user = await _named_user(accounts, args.login)
        if user is None:
            return EXIT_PROBLEM
        # A running server closes the user's sockets within a second (its revocation sweep).
        password, revoked = await accounts.reset_password(user, by=os_operator())
    _out(
        args,
        _("One-time password for {login}: {password}", login=user.login, password=password)
        + "\n"
        + _(
            "It is shown only this once: give it to them yourself, by another channel than the"
            " messaging. At their next login they must choose a new password."
        )
        + " "
        + ngettext("{n} open session closed.", "{n} open sessions closed.", revoked),
        {
            "id": user.id,
            "login": user.login,
            "one_time_password": password,
            "sessions_revoked": revoked,
        },
    )
    return 0


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
            _out(args, f"{entry.seq:>6}  {when}  {who}  {what}", audit_json(entry))
    if not shown and not args.json:
        print(_("No administrator action recorded."))
    return 0


PASSWORD_ATTEMPTS = 3  # on a terminal; a password read from stdin gets one


def _ask_password(login: str, names: tuple[str, str]) -> str:
    """A new account's password, checked against the rule (said before the prompt)."""
    if not sys.stdin.isatty():
        password = sys.stdin.readline().rstrip("\n")
        _check_new_password(password, login, names)
        return password
    print(rule(ADMIN.lang), file=sys.stderr)
    for attempt in range(1, PASSWORD_ATTEMPTS + 1):
        password = getpass.getpass(_("Password: "))
        try:
            _check_new_password(password, login, names)
            if password != getpass.getpass(_("Again: ")):
                raise ConfigError(N_("The passwords differ."))
            return password
        except ConfigError as exc:
            if attempt == PASSWORD_ATTEMPTS:
                raise
            print(exc.message_in(ADMIN.lang), file=sys.stderr)
    raise AssertionError("unreachable")  # pragma: no cover


def _check_new_password(password: str, login: str, names: tuple[str, str]) -> None:
    try:
        check_password(password, login=login, names=names)
    except WeakPasswordError as exc:  # the same sentence, said by the admin command
        raise ConfigError(exc.template, **exc.details) from None


# ----------------------------------------------------------------------------- parser

Command = Callable[[Settings, argparse.Namespace], Awaitable[int]]


def build_parser() -> argparse.ArgumentParser:
    """The parser, its help in the admin command's language (decide it first)."""
    parser = argparse.ArgumentParser(
        prog="chatd",
        description=_(
            "chatd secure messaging server. Settings come from CHATD_* variables"
            " (see 'chatd settings')."
        ),
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar=_("COMMAND"))

    def add(name: str, func: Command, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(func=func)
        return p

    def json_flag(p: argparse.ArgumentParser) -> None:
        p.add_argument("--json", action="store_true", help=_("Write the result as JSON."))

    add("init", cmd_init, _("Create the key file and the database (safe to repeat)."))
    serve = add("serve", cmd_serve, _("Run the server (HTTP + WebSocket) until SIGINT/SIGTERM."))
    serve.set_defaults(uvloop=True)
    json_flag(
        add(
            "verify",
            cmd_verify,
            _("Check every hash chain and seal; exit 1 naming what is broken."),
        )
    )
    add("settings", cmd_settings, _("List every CHATD_* setting with its default."))
    audit = add(
        "audit",
        cmd_audit,
        _(
            "Show the administrators' audit log: who changed accounts, keys, the epoch or"
            " shredded conversations, and when (ids only, never a name or a password)."
        ),
    )
    audit.add_argument(
        "--since",
        type=moment,
        metavar=_("DATE"),
        help=_("Only actions at or after this date (YYYY-MM-DD[THH:MM], local time)."),
    )
    audit.add_argument(
        "--before",
        type=moment,
        metavar=_("DATE"),
        help=_("Only actions before this date (YYYY-MM-DD[THH:MM], local time)."),
    )
    audit.add_argument(
        "--action",
        action="append",
        choices=[kind.value for kind in ActionKind],
        help=_("Only this kind of action (repeat for several)."),
    )
    json_flag(audit)

    keys = sub.add_parser("keys", help=_("Master key rotation.")).add_subparsers(
        dest="keys_command", required=True, metavar=_("ACTION")
    )
    keys.add_parser("rotate", help=_("New master key; re-wrap every data key.")).set_defaults(
        func=cmd_keys_rotate
    )
    keys.add_parser("list", help=_("Key ids, active and in use.")).set_defaults(func=cmd_keys_list)
    retire = keys.add_parser("retire", help=_("Remove a master key no data key uses any more."))
    retire.add_argument("key_id", metavar=_("KEY_ID"))
    retire.set_defaults(func=cmd_keys_retire)

    retention = sub.add_parser("retention", help=_("Retention (crypto-shredding).")).add_subparsers(
        dest="retention_command", required=True, metavar=_("ACTION")
    )
    run = retention.add_parser("run", help=_("Shred conversations past the retention period."))
    mode = run.add_mutually_exclusive_group(required=True)
    mode.add_argument("--dry-run", action="store_true", help=_("List what would be shredded."))
    mode.add_argument("--apply", action="store_true", help=_("Destroy their data keys."))
    json_flag(run)
    run.set_defaults(func=cmd_retention_run)

    store = sub.add_parser("store", help=_("The database's identity.")).add_subparsers(
        dest="store_command", required=True, metavar=_("ACTION")
    )
    new_epoch = store.add_parser(
        "new-epoch",
        help=_(
            "Give the database a new epoch, after restoring or replacing it (refused while a"
            " server runs)."
        ),
    )
    json_flag(new_epoch)
    new_epoch.set_defaults(func=cmd_store_new_epoch)

    user = sub.add_parser("user", help=_("User accounts.")).add_subparsers(
        dest="user_command", required=True, metavar=_("ACTION")
    )
    user_add = user.add_parser(
        "add",
        help=_("Create a user (password prompted, or read from stdin)."),
        description=_(
            "Create a user. The password is prompted twice, or read from the first"
            " line of stdin. {rule}",
            rule=rule(ADMIN.lang),
        ),
    )
    user_add.add_argument("login", metavar=_("LOGIN"))
    user_add.add_argument(
        "--first-name", required=True, metavar=_("FIRST_NAME"), help=_("First name.")
    )
    user_add.add_argument(
        "--last-name", required=True, metavar=_("LAST_NAME"), help=_("Last name.")
    )
    user_add.add_argument(
        "--profession", default="", metavar=_("PROFESSION"), help=_("Profession or specialty.")
    )
    user_add.add_argument(
        "--structure",
        default="",
        metavar=_("STRUCTURE"),
        help=_("Hospital, practice, care home…"),
    )
    user_add.add_argument("--email", default="", metavar=_("EMAIL"), help=_("E-mail address."))
    user_add.add_argument("--rpps", default=None, metavar="RPPS", help=_("RPPS number, if any."))
    user_add.add_argument(
        "--language",
        choices=LANGUAGES,
        default=None,
        help=_(
            "The language of the account (fr or en). Without it, the person's application"
            " chooses, else the server's default."
        ),
    )
    json_flag(user_add)
    user_add.set_defaults(func=cmd_user_add)
    user_list = user.add_parser(
        "list",
        help=_("List users."),
        description=_(
            "List users: number, login, language ('-': not chosen), name, profession and structure."
        ),
    )
    json_flag(user_list)
    user_list.set_defaults(func=cmd_user_list)
    disable = user.add_parser("disable", help=_("Disable a user and close their sessions."))
    disable.add_argument("login", metavar=_("LOGIN"))
    disable.set_defaults(func=cmd_user_disable, enable=False)
    enable = user.add_parser("enable", help=_("Enable a user."))
    enable.add_argument("login", metavar=_("LOGIN"))
    enable.set_defaults(func=cmd_user_disable, enable=True)
    reset_help = _(
        "Give a user a one-time password, printed once, and close their sessions; at their"
        " next login they must choose a new password."
    )
    reset = user.add_parser("reset-password", help=reset_help, description=reset_help)
    reset.add_argument("login", metavar=_("LOGIN"))
    json_flag(reset)
    reset.set_defaults(func=cmd_user_reset_password)
    return parser


async def cmd_settings(settings: Settings, args: argparse.Namespace) -> int:
    for variable, default, doc in Settings.describe():
        print(f"{variable:<30} {default:<14} {_(doc)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    ADMIN.use(admin_language())
    with speaking(ADMIN):
        args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_env()
        run = uvloop.run if getattr(args, "uvloop", False) else asyncio.run
        return int(run(args.func(settings, args)))
    except (ConfigError, ValidationError) as exc:  # a bad setting, a bad argument
        _say_error(exc)
        return EXIT_USAGE
    except KeyFileError as exc:
        _say_error(exc)
        return EXIT_KEYS
    except ServerRunningError as exc:
        _say_error(exc)
        return EXIT_BUSY
    except DatabaseDamaged as exc:
        _say_error(exc)
        return EXIT_DAMAGED
    except ChatdError as exc:
        _say_error(exc)
        return EXIT_DATABASE
    except KeyboardInterrupt:
        return 130


def _say_error(exc: ChatdError) -> None:
    print(_("chatd: {message}", message=exc.message_in(ADMIN.lang)), file=sys.stderr)
