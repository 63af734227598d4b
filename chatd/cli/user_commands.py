"""The ``chatd user`` commands: add, list, disable and enable, reset a password.

They go through :class:`~chatd.services.accounts.AccountAdmin`, which records each change in
the administrators' audit log under the operator's OS account.
"""

from __future__ import annotations

import argparse
import getpass
import sys

from chatd.admin_voice import ADMIN
from chatd.cli.common import (
    EXIT_PROBLEM,
    _,
    ngettext,
    out,
)
from chatd.config import Settings
from chatd.core.accounts import check_account_fields
from chatd.core.errors import (
    ConfigError,
    WeakPasswordError,
)
from chatd.core.password_policy import check_password, rule
from chatd.core.records import NewUser, User, UserProfile
from chatd.i18n import N_
from chatd.services.accounts import AccountAdmin
from chatd.services.maintenance import os_operator
from chatd.wiring import running


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
    out(
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
        out(
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
    out(
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
