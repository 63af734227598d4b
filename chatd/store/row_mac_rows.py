"""Row MACs, the part every backend shares: which columns, how a failed row is named and logged,
and how verify reports it (no SQL here: :mod:`chatd.store.sqlite.row_macs` and
:mod:`chatd.store.postgres.row_macs` run the queries)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from chatd.core.records import VerifyProblem
from chatd.crypto.row_macs import (
    ATTACHMENTS,
    AUTH_TOKENS,
    COLUMNS,
    IDEMPOTENCY_KEYS,
    MEMBERSHIPS,
    USERS,
    RowMacs,
    Verdict,
)
from chatd.i18n import N_, Text

log = logging.getLogger("chatd.store")

# The order verify reads the MAC'd tables in.
VERIFIED_TABLES = (USERS, AUTH_TOKENS, MEMBERSHIPS, ATTACHMENTS, IDEMPOTENCY_KEYS)
PAGE = 1000


def columns(table: str, alias: str = "") -> str:
    """The covered columns then ``mac``, for a SELECT (``alias.`` before each if given)."""
    prefix = f"{alias}." if alias else ""
    return ", ".join(f"{prefix}{column}" for column in (*COLUMNS[table], "mac"))


def row_ok(macs: RowMacs, table: str, fields: Sequence[object], mac: object, who: str) -> bool:
    """Check a row the server is about to rely on; log a failure (``who``: ids only)."""
    verdict = macs.check(table, fields, mac)
    if verdict is Verdict.OK:
        return True
    log.error("integrity: the %s row of %s failed its check (%s)", table, who, verdict.value)
    return False


def who(table: str, fields: Mapping[str, Any]) -> str:
    """A row named by ids only (a token by its user, never by its hash)."""
    if table == USERS:
        return f"user {fields['id']}"
    if table == AUTH_TOKENS:
        return f"a token of user {fields['user_id']}"
    if table == IDEMPOTENCY_KEYS:
        return f"the retry key of user {fields['sender']} in conversation {fields['conv_id']}"
    if table == ATTACHMENTS:
        return f"attachment {fields['id']}"
    return f"user {fields['user_id']} in conversation {fields['conv_id']}"


WHY = {
    Verdict.MISSING: N_("it has no MAC"),
    Verdict.MALFORMED: N_("its MAC is malformed"),
    Verdict.UNKNOWN_KEY: N_("its MAC was made with a key that is not in the key file"),
    Verdict.MISMATCH: N_("its MAC does not match the row"),
}


def verify_problem(table: str, fields: Mapping[str, Any], verdict: Verdict) -> VerifyProblem:
    why = Text(WHY[verdict])
    if table == USERS:
        text = Text(N_("the account row fails its integrity check: {why}"), {"why": why})
        return VerifyProblem(0, 0, text, _int(fields["id"]))
    if table == AUTH_TOKENS:
        text = Text(N_("a login token row fails its integrity check: {why}"), {"why": why})
        return VerifyProblem(0, 0, text, _int(fields["user_id"]))
    if table == ATTACHMENTS:
        text = Text(N_("its row fails its integrity check: {why}"), {"why": why})
        return VerifyProblem.of_attachment(
            _int(fields["id"]), _int_or_none(fields["conv_id"]), _int_or_none(fields["seq"]), text
        )
    if table == IDEMPOTENCY_KEYS:
        text = Text(
            N_("the retry key of user {user} fails its integrity check: {why}"),
            {"user": str(fields["sender"]), "why": why},
        )
        return VerifyProblem(_int(fields["conv_id"]), _int(fields["first_seq"]), text)
    text = Text(
        N_("the membership row of user {user} fails its integrity check: {why}"),
        {"user": str(fields["user_id"]), "why": why},
    )
    return VerifyProblem(_int(fields["conv_id"]), _int(fields["joined_seq"]), text)


def _int(value: object) -> int:
    """An id for a report; 0 for a value that is not one (the row is garbage, still named)."""
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _int_or_none(value: object) -> int | None:
    return None if value is None else _int(value)
