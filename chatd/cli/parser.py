"""The ``chatd`` argument parser, and :func:`main`: one sub-command, one exit code."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import uvloop

from chatd.admin_voice import ADMIN, admin_language
from chatd.argparse_words import speaking
from chatd.cli.audit_command import cmd_audit, moment
from chatd.cli.backup_commands import cmd_backup, cmd_restore
from chatd.cli.checkpoint_commands import (
    cmd_checkpoints_declare_rewind,
    cmd_checkpoints_export,
    cmd_checkpoints_show,
)
from chatd.cli.common import (
    EXIT_BUSY,
    EXIT_DAMAGED,
    EXIT_DATABASE,
    EXIT_KEYS,
    EXIT_REWOUND,
    EXIT_USAGE,
    _,
    say_error,
)
from chatd.cli.migrate_command import cmd_migrate, cmd_migrate_to
from chatd.cli.store_commands import (
    cmd_init,
    cmd_keys_list,
    cmd_keys_retire,
    cmd_keys_rotate,
    cmd_retention_run,
    cmd_serve,
    cmd_settings,
    cmd_store_new_epoch,
    cmd_verify,
)
from chatd.cli.user_commands import (
    cmd_user_add,
    cmd_user_disable,
    cmd_user_list,
    cmd_user_reset_password,
)
from chatd.config import Settings
from chatd.core.audit import ActionKind
from chatd.core.errors import (
    ChatdError,
    ConfigError,
    DatabaseDamaged,
    HistoryRewound,
    KeyFileError,
    ServerRunningError,
    ValidationError,
)
from chatd.core.password_policy import rule
from chatd.i18n import LANGUAGES

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
    serve.add_argument(
        "--node-id",
        metavar=_("NODE"),
        help=_("This node's name among the nodes (default: CHATD_NODE_ID, else a random one)."),
    )
    verify = add(
        "verify",
        cmd_verify,
        _("Check every hash chain and seal; exit 1 naming what is broken."),
    )
    json_flag(verify)
    verify.add_argument(
        "--checkpoints",
        metavar=_("FILE"),
        type=Path,
        help=_("Check against this copy of the checkpoint log (e.g. one kept off this host)."),
    )
    migrate = add(
        "migrate",
        cmd_migrate,
        _(
            "Bring the database schema to this version (PostgreSQL: run it once, as the"
            " database owner, before starting the nodes)."
        ),
    )
    migrate.add_argument(
        "--grant",
        metavar=_("ROLE"),
        help=_("PostgreSQL: give this role, which the nodes connect as, the privileges they need."),
    )
    json_flag(migrate)
    migrate_to = add(
        "migrate-to",
        cmd_migrate_to,
        _(
            "Move this SQLite database, as it is, into an empty PostgreSQL database (the"
            " server stopped); the history keeps its seqs, hashes and epoch."
        ),
    )
    migrate_to.add_argument("url", metavar=_("URL"), help=_("postgresql://USER:PASSWORD@HOST/NAME"))
    migrate_to.add_argument(
        "--grant",
        metavar=_("ROLE"),
        help=_("PostgreSQL: give this role, which the nodes connect as, the privileges they need."),
    )
    json_flag(migrate_to)
    backup = add(
        "backup",
        cmd_backup,
        _(
            "Copy the database, the checkpoint log and the attachment files into a new"
            " directory while the server runs (the key file is not copied: keep it apart)."
        ),
    )
    backup.add_argument("directory", metavar=_("DIRECTORY"), type=Path)
    json_flag(backup)
    restore = add(
        "restore",
        cmd_restore,
        _(
            "Put a backup back into an empty place (the key file first), then declare a new"
            " store epoch."
        ),
    )
    restore.add_argument("directory", metavar=_("DIRECTORY"), type=Path)
    json_flag(restore)
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

    checkpoints = sub.add_parser(
        "checkpoints", help=_("The signed checkpoint log, kept outside the database.")
    ).add_subparsers(dest="checkpoints_command", required=True, metavar=_("ACTION"))
    show = checkpoints.add_parser(
        "show",
        help=_("Say the last checkpoint and whether the database extends it (exit 1 if not)."),
    )
    json_flag(show)
    show.set_defaults(func=cmd_checkpoints_show)
    export = checkpoints.add_parser(
        "export",
        help=_("Copy the log's records as they are, to keep a copy off this host."),
    )
    export.add_argument(
        "--since",
        type=int,
        default=1,
        metavar="N",
        help=_("Only records N and later (default: all)."),
    )
    export.add_argument(
        "--output",
        metavar=_("FILE"),
        help=_("Append to FILE instead of writing to the standard output."),
    )
    export.set_defaults(func=cmd_checkpoints_export)
    rewind = checkpoints.add_parser(
        "declare-rewind",
        help=_(
            "Declare that an older database was restored on purpose: a new store epoch, and"
            " checks start again from the database as it is (refused while a server runs)."
        ),
    )
    json_flag(rewind)
    rewind.set_defaults(func=cmd_checkpoints_declare_rewind)

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


def main(argv: list[str] | None = None) -> int:
    ADMIN.use(admin_language())
    with speaking(ADMIN):
        args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_env()
        run = uvloop.run if getattr(args, "uvloop", False) else asyncio.run
        return int(run(args.func(settings, args)))
    except (ConfigError, ValidationError) as exc:  # a bad setting, a bad argument
        say_error(exc)
        return EXIT_USAGE
    except KeyFileError as exc:
        say_error(exc)
        return EXIT_KEYS
    except ServerRunningError as exc:
        say_error(exc)
        return EXIT_BUSY
    except DatabaseDamaged as exc:
        say_error(exc)
        return EXIT_DAMAGED
    except HistoryRewound as exc:
        say_error(exc)
        return EXIT_REWOUND
    except ChatdError as exc:
        say_error(exc)
        return EXIT_DATABASE
    except KeyboardInterrupt:
        return 130
