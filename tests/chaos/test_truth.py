"""The chaos harness's ground truth, read through the store's export path.

Accounts are seeded by :mod:`bench.accounts` (chatd's own services), events written by the
messaging service, and :func:`read_log` must give back every one of them, in ``(conv, seq)``
order, across more than one export page, with the fields the checker compares.
"""

from __future__ import annotations

from pathlib import Path

from bench.accounts import create_accounts, setup_process
from bench.chaos_harness.history import message_text
from bench.chaos_harness.truth import EXPORT_PAGE, LogEvent, read_log
from chatd.core.conversations import (
    AddMember,
    CreateConversation,
    Leave,
    MessageBody,
    PostMessage,
)
from chatd.core.ids import ConvId
from chatd.core.records import UserProfile

TERMS = "truth-terms-1"


async def test_read_log_gives_back_every_event_in_order(tmp_path: Path) -> None:
    data_dir = tmp_path / "var"
    expected: list[LogEvent] = []
    async with setup_process(data_dir, TERMS) as process:
        a, b, c = await create_accounts(
            process, ["ana", "bruno", "chloe"], UserProfile("Ana", "Test", "Infirmière")
        )
        messaging = process.services.messaging
        first = await messaging.apply(CreateConversation(a.user_id, (b.user_id,), "Suivi", "c1"))
        conv = ConvId(first.conv_id)
        expected.append(LogEvent(conv, 1, "created", a.user_id, members=(a.user_id, b.user_id)))
        # More than one export page, so that paging from the last position is exercised.
        for n in range(EXPORT_PAGE + 5):
            cmid = f"m{n}"
            result = await messaging.apply(
                PostMessage(conv, b.user_id, MessageBody(message_text(cmid, 40)), cmid)
            )
            expected.append(LogEvent(conv, result.last_seq, "message", b.user_id, cmid=cmid))
        added = await messaging.apply(AddMember(conv, b.user_id, c.user_id, "add-c"))
        expected.append(LogEvent(conv, added.last_seq, "joined", b.user_id, subject=c.user_id))
        left = await messaging.apply(Leave(conv, a.user_id, "leave-a"))
        expected.append(LogEvent(conv, left.last_seq, "left", a.user_id, subject=a.user_id))
        second = await messaging.apply(CreateConversation(c.user_id, (b.user_id,), "Autre", "c2"))
        expected.append(
            LogEvent(
                ConvId(second.conv_id), 1, "created", c.user_id, members=(c.user_id, b.user_id)
            )
        )
        await messaging.drain()
    environ = {"CHATD_DATA_DIR": str(data_dir), "CHATD_TERMS_VERSION": TERMS}
    log = await read_log(environ)
    assert log == expected


async def test_seeded_sessions_are_live_and_past_the_terms(tmp_path: Path) -> None:
    async with setup_process(tmp_path / "var", TERMS) as process:
        (account,) = await create_accounts(process, ["dora"], UserProfile("Dora", "Test"))
        principal = await process.services.auth.authenticate(account.token)
    assert principal.user_id == account.user_id
    assert principal.terms_accepted and not principal.password_change_required
