"""``chatd-cli passwd``, and choosing one's own password at the login that follows an
administrator's reset (``chatd user reset-password``).

Both go through ``POST /v1/auth/password`` (protocol §2) with the current password — the
one-time password after a reset — and the new one.  The rule is said before the new password
is asked for.  On a terminal the passwords are read without echo and the new one twice, with
up to :data:`ATTEMPTS` tries when the two differ or the server finds it too weak;
``--password-stdin`` reads one line for each password, and gets one try.
"""

from __future__ import annotations

import contextlib
import getpass
import sys
from typing import TYPE_CHECKING, Any

from clients.cli import auth
from clients.cli.errors import AuthError, CliError, UsageError
from clients.cli.i18n import N_, _, ngettext

if TYPE_CHECKING:
    from clients.cli.commands import Context

ATTEMPTS = 3

# The server's rule (chatd.core.password_policy.RULE; a test keeps the two the same), said before
# a new password is typed — translated when said: _(RULE).  The server's refusal names the
# part that was broken.
RULE = N_(
    "A password has at least 12 characters, 6 of them different; it must not contain your"
    " login or your name, nor be a common password or a keyboard or alphabet sequence."
)


def _line() -> str:
    return sys.stdin.readline().rstrip("\n")


def _ask_new(from_stdin: bool) -> str:
    if from_stdin:
        password = _line()
        if not password:
            raise UsageError(_("No new password on stdin (one line after the current one)."))
        return password
    password = getpass.getpass(_("New password: "))  # no echo
    if password != getpass.getpass(_("Again: ")):
        raise UsageError(_("The two passwords differ."))
    return password


def change(ctx: Context, token: str, current: str, *, from_stdin: bool) -> dict[str, Any]:
    """Ask for a new password and set it; the server's answer."""
    if not from_stdin:
        ctx.out.note(_(RULE))
    for attempt in range(1, ATTEMPTS + 1):
        try:
            return auth.change_password(
                ctx.server, token, current, _ask_new(from_stdin), ctx.timeout
            )
        except AuthError as exc:
            if exc.code == "invalid_credentials":
                raise AuthError(_("The current password is wrong."), code=exc.code) from None
            raise
        except CliError as exc:
            again = isinstance(exc, UsageError) or exc.code == "weak_password"
            if from_stdin or not again or attempt == ATTEMPTS:
                raise
            ctx.out.note(exc.message)
    raise AssertionError("unreachable")  # pragma: no cover


async def cmd_passwd(ctx: Context, args: Any) -> int:
    session = ctx.session()
    current = _line() if args.password_stdin else getpass.getpass(_("Current password: "))
    answer = change(ctx, session.token, current, from_stdin=args.password_stdin)
    count = int(answer.get("sessions_revoked", 0))
    ctx.out.result(
        ngettext(
            "Password changed. {n} other session closed; this one stays open.",
            "Password changed. {n} other sessions closed; this one stays open.",
            count,
        ),
        {"server": ctx.server, "changed": True, "sessions_revoked": count},
    )
    return 0


def after_reset(ctx: Context, token: str, one_time_password: str, *, from_stdin: bool) -> None:
    """At login, with a one-time password: the new session may do nothing until the user
    chose their own password.  If they do not, the session is logged out again."""
    ctx.out.note(_("Your password was reset by an administrator: choose your own now."))
    try:
        change(ctx, token, one_time_password, from_stdin=from_stdin)
    except BaseException as exc:  # refused, unreachable, Ctrl-C: leave no gated session
        with contextlib.suppress(CliError):  # else it expires; it can do nothing meanwhile
            auth.logout(ctx.server, token, ctx.timeout)
        if isinstance(exc, CliError):
            again = _("You are not logged in; log in again with the one-time password.")
            exc.message = f"{exc.message} {again}"
        raise
