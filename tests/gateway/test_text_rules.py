"""Terminal injection, the server's half: a real server refuses control characters in message
texts and invisible or direction-changing characters in names (docs/protocol.md §10,
``invalid_request`` with ``field`` and ``char``), and ``chatd user add`` refuses them in
profile fields; what the rules allow (tabs, line breaks, Arabic beside French, emoji) goes
through."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import run_chatd
from tests.gateway.client import cmid
from tests.gateway.conftest import Admin

FORGED_LINE = "\r[99] 10:00 ! Dr X: ARRÊTEZ LE TRAITEMENT"
HOSTILE_TEXTS = [
    (FORGED_LINE, "U+000D"),
    ("ok\x1b[2J", "U+001B"),  # clear the screen
    ("ok\x1b]0;Dr X\x07", "U+001B"),  # set the window title
    ("ok\x1b]52;c;cm0gLXJmIH4K\x07", "U+001B"),  # OSC 52: write the clipboard
    ("ok\x9b2J", "U+009B"),  # a one-byte CSI (C1)
    ("ok\x00", "U+0000"),
    ("ok\x7f", "U+007F"),
    ("ok\x85", "U+0085"),
]
HOSTILE_NAMES = [
    ("Suivi \u202eTNEITAP", "U+202E"),  # right-to-left override
    ("Suivi \u2066x\u2069", "U+2066"),  # isolate
    ("Suivi \u200f", "U+200F"),  # right-to-left mark
    ("Suivi\u061c", "U+061C"),  # Arabic letter mark
    ("Sui\u200bvi", "U+200B"),  # zero width space
    ("Suivi\nDr X", "U+000A"),
    ("Suivi\tDr X", "U+0009"),
    ("Suivi\u2028Dr X", "U+2028"),
]


@pytest.mark.parametrize(("text", "char"), HOSTILE_TEXTS)
async def test_control_characters_in_a_text_are_refused(admin: Admin, text: str, char: str) -> None:
    a, b = await admin.users(2)
    alice = await admin.connect(a, lang="fr")
    conv = await alice.create([b.id], "Suivi")
    reply = await alice.request("send", conv=conv, text=text, client_msg_id=cmid())
    assert reply["code"] == "invalid_request", reply
    assert reply["details"] == {"field": "text", "char": char}
    assert reply["message"] == (
        f"Le message contient un caractère de contrôle ({char})\u00a0; seuls les tabulations"
        " et les retours à la ligne sont admis."
    )
    created = await alice.request(
        "create", members=[b.id], name="Suivi", text=text, client_msg_id=cmid()
    )
    assert created["code"] == "invalid_request" and created["details"]["field"] == "text"
    page = await alice.ok("history", conv=conv, limit=50)
    assert [e["kind"] for e in page["events"]] == ["created", "message"]  # nothing appended


@pytest.mark.parametrize(("name", "char"), HOSTILE_NAMES)
async def test_invisible_characters_in_a_name_are_refused(
    admin: Admin, name: str, char: str
) -> None:
    a, b = await admin.users(2)
    alice = await admin.connect(a, lang="en")
    reply = await alice.request("create", members=[b.id], name=name, client_msg_id=cmid())
    assert reply["code"] == "invalid_request", reply
    assert reply["details"] == {"field": "name", "char": char}
    assert char in reply["message"]
    conv = await alice.create([b.id], "Suivi")
    renamed = await alice.request("rename", conv=conv, name=name, client_msg_id=cmid())
    assert renamed["code"] == "invalid_request"
    assert renamed["details"] == {"field": "name", "char": char}
    listed = await alice.ok("list")
    assert [c["name"] for c in listed["conversations"] if c["conv"] == conv] == ["Suivi"]


async def test_what_people_write_goes_through(admin: Admin) -> None:
    a, b = await admin.users(2)
    alice = await admin.connect(a)
    texts = [
        "Tension :\t14/9\nPouls :\t72",
        "Le patient dit « \u0645\u0631\u062d\u0628\u0627 » \u200f(bonjour)",  # Arabic, RLM
        "Merci \U0001f9d1\u200d\u2695\ufe0f",  # an emoji sequence with a joiner
    ]
    conv = await alice.create([b.id], "Équipe \U0001f9d1\u200d\u2695\ufe0f")
    for text in texts:
        await alice.send(conv, text)
    page = await alice.ok("history", conv=conv, limit=50)
    assert [e.get("text") for e in page["events"]][2:] == texts


@pytest.mark.parametrize(
    ("option", "value", "field", "char"),
    [
        ("--first-name", "Anne\u202e", "first_name", "U+202E"),
        ("--last-name", "Mar\x1b[2Jtin", "last_name", "U+001B"),
        ("--structure", "CH\u2066 X", "structure", "U+2066"),
        ("--profession", "Infirmière\r", "profession", "U+000D"),
    ],
)
def test_user_add_refuses_invisible_characters_in_a_profile(
    tmp_path: Path, option: str, value: str, field: str, char: str
) -> None:
    data = tmp_path / "data"
    assert run_chatd(data, "init").returncode == 0
    args = ["user", "add", "anne", "--first-name", "Anne", "--last-name", "Martin", option, value]
    french = {"LANG": "fr_FR.UTF-8"}
    refused = run_chatd(data, *args, stdin="a long enough pass phrase\n", env=french)
    assert refused.returncode == 2, refused.stderr
    assert refused.stderr.strip() == (
        f"chatd\u00a0: Le champ {field} contient un caractère invisible ou qui change le sens"
        f" de l'écriture ({char}), ce qui n'est pas admis."
    )
    assert "anne" not in run_chatd(data, "user", "list", "--json").stdout
    bad_login = run_chatd(
        data, "user", "add", "an\u202ene", "--first-name", "A", "--last-name", "M",
        stdin="a long enough pass phrase\n",
    )  # fmt: skip
    assert bad_login.returncode == 2 and "U+202E" in bad_login.stderr
