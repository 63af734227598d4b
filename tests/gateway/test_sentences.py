"""Validation sentences over the wire, against a real server: written for the person using the
client, in French unless the client asks for English; the code and ``details.field`` are for
the client program and do not change with the language."""

from __future__ import annotations

from chatd.core.conversations import MAX_TEXT_CHARS
from tests.gateway.client import WsClient, cmid
from tests.gateway.conftest import Admin


async def refusal(client: WsClient, op: str, **fields: object) -> dict[str, object]:
    reply = await client.request(op, **fields)
    assert reply["op"] == "error", reply
    return reply


async def test_a_message_over_the_limit_is_refused_in_the_clients_language(
    admin: Admin,
) -> None:
    alice, bob = await admin.users(2)
    french = await admin.connect(alice)
    english = await admin.connect(alice, lang="en")
    conv = await french.create([bob.id])
    before = await french.ok("history", conv=conv)
    too_long = "x" * (MAX_TEXT_CHARS + 1)
    said = {}
    for name, client in (("fr", french), ("en", english)):
        reply = await refusal(client, "send", client_msg_id=cmid(), conv=conv, text=too_long)
        assert reply["code"] == "invalid_request"
        assert reply["details"] == {"field": "text", "max": MAX_TEXT_CHARS}
        said[name] = reply["message"]
    assert said == {
        "fr": "Le message dépasse 20\u202f000 caractères.",
        "en": "The message is over 20,000 characters.",
    }
    # Nothing was stored.
    assert (await french.ok("history", conv=conv))["events"] == before["events"]


async def test_a_conversation_without_another_participant_is_explained(admin: Admin) -> None:
    alice = await admin.user()
    client = await admin.connect(alice)
    reply = await refusal(client, "create", client_msg_id=cmid(), members=[], name="Garde")
    assert (reply["code"], reply["message"], reply["details"]) == (
        "invalid_request",
        "Une conversation doit compter au moins un autre participant.",
        {"field": "members", "min": 1, "max": 500},
    )
    yourself = await refusal(client, "create", client_msg_id=cmid(), members=[alice.id], name="G")
    assert yourself["message"] == reply["message"]  # the rules say the same as the protocol
