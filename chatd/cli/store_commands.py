"""The ``chatd`` commands on the data directory as a whole: init, serve, verify, keys,
retention, the store epoch, the settings.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from chatd.admin_voice import ADMIN
from chatd.cli.checkpoint_commands import refuse_a_rewound_history
from chatd.cli.claims import serving_use, sole_use
from chatd.cli.common import (
    EXIT_DAMAGED,
    EXIT_KEYS,
    EXIT_PROBLEM,
    _,
    ngettext,
    out,
)
from chatd.cli.migrate_command import migrate_postgres
from chatd.config import Settings
from chatd.config.parsers import InvalidValue, parse_node_id
from chatd.core.clock import wall_clock_ms
from chatd.core.errors import (
    DatabaseDamaged,
    IntegrityError,
    ValidationError,
)
from chatd.core.records import VerifyProblem, VerifyReport
from chatd.crypto.keyring import KeyRing, load_key_file, write_key_file
from chatd.i18n import N_
from chatd.services.maintenance import Maintenance, os_operator
from chatd.wiring import attachment_files, build_gateway, open_store, running

MS_PER_YEAR = 365.25 * 24 * 3600 * 1000
KEY_FILE_CREATED = N_("Created key file {path} (mode 0600). Back it up: without it nothing opens.")


async def cmd_init(settings: Settings, args: argparse.Namespace) -> int:
    path = settings.store.key_file_path
    if path.exists():
        load_key_file(path)  # refuse a bad file loudly even when not creating one
        print(_("Key file {path} already exists; kept.", path=str(path)))
    else:
        write_key_file(path, KeyRing.generate(), replace=False)
        print(_(KEY_FILE_CREATED, path=str(path)))
    dsn = settings.store.postgres_dsn
    if dsn is not None:  # the operator's step, as the owner role: chatd migrate's work
        from chatd.store.postgres.failures import address

        await migrate_postgres(dsn)
    async with open_store(settings):
        pass
    where = address(dsn) if dsn is not None else str(settings.store.database_path)
    print(_("Database {path} is ready.", path=where))
    return 0


async def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    from chatd.gateway.server import serve  # the web stack is only imported to serve

    if args.node_id is not None:
        settings = with_node_id(settings, args.node_id)
    path = settings.store.key_file_path
    if not path.exists():
        write_key_file(path, KeyRing.generate(), replace=False)
        print(_(KEY_FILE_CREATED, path=str(path)))
    # One server per SQLite file; any number of nodes on PostgreSQL (chatd.cli.claims).
    async with serving_use(settings), running(settings, serving=True) as process:
        await refuse_a_rewound_history(process.store)
        await serve(settings, build_gateway(process))
    return 0


def with_node_id(settings: Settings, raw: str) -> Settings:
    """The settings with ``--node-id`` in place of ``CHATD_NODE_ID`` (checked the same way)."""
    try:
        node = parse_node_id(raw)
    except InvalidValue as exc:
        raise ValidationError(exc.msgid, **{**exc.params, "variable": "--node-id"}) from None
    return dataclasses.replace(
        settings, cluster=dataclasses.replace(settings.cluster, node_id=node)
    )


async def cmd_verify(settings: Settings, args: argparse.Namespace) -> int:
    try:
        async with open_store(settings) as store:
            # The store's row audit, then the attachment service's file audit.
            report = await attachment_files(settings, store).verify(checkpoint_log=args.checkpoints)
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
    out(
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
    async with sole_use(settings, N_("rotate the master key")):
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
    async with sole_use(settings, N_("retire a master key")):
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
        if args.key_id in await store.row_mac_kek_ids():
            print(
                _(
                    "Key {key} still authenticates database rows; run 'chatd keys rotate' first.",
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
    out(
        args,
        said,
        {"applied": bool(args.apply), "conversations": expired},
    )
    return 0 if args.apply or not expired else EXIT_PROBLEM


async def cmd_store_new_epoch(settings: Settings, args: argparse.Namespace) -> int:
    # A running server would go on announcing the epoch it read at start: refuse while one
    # holds the database, as for a key rotation.
    async with (
        sole_use(settings, N_("declare a new store epoch")),
        open_store(settings) as store,
    ):
        epoch = await Maintenance(store).declare_new_epoch(by=os_operator())
    out(args, _("New store epoch: {epoch}", epoch=epoch), {"epoch": epoch})
    return 0


async def cmd_settings(settings: Settings, args: argparse.Namespace) -> int:
    for variable, default, doc in Settings.describe():
        print(f"{variable:<30} {default:<14} {_(doc)}")
    return 0
