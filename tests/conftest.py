"""Shared fixtures: a key ring, users, and small helpers for conversation operations.

Nothing here knows a store backend; ``tests/store/conftest.py`` provides the ``store``.
"""

from __future__ import annotations

import itertools
import os
import random
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest

from chatd.core.conversations import (
    AddMember,
    CreateConversation,
    Leave,
    MessageBody,
    PostMessage,
    Rename,
)
from chatd.core.events import MessageTag
from chatd.core.records import AppendResult, NewUser, User, UserProfile
from chatd.crypto.keyring import KeyRing
from chatd.store.contract import Store

# Real PostgreSQL and NATS servers for any test directory (tests/servers/fixtures.py).
pytest_plugins = ["tests.servers.fixtures"]

# ----------------------------------------------------------------------------- test order


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--order",
        default="file",
        help="file (default), reverse, or random[:SEED]: the suite must pass in any order",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """``--order reverse`` runs everything backwards; ``--order random:SEED`` shuffles the
    modules and the tests inside each (modules stay whole, so that module-scoped servers
    start once).  The seed is printed, to replay a failing order."""
    order = str(config.getoption("--order"))
    if order == "file":
        return
    if order == "reverse":
        items.reverse()
        return
    kind, _, seed_text = order.partition(":")
    if kind != "random":
        raise pytest.UsageError(f"--order: file, reverse or random[:SEED], not {order!r}")
    seed = int(seed_text) if seed_text else random.SystemRandom().randrange(1 << 32)
    print(f"test order: random:{seed}")
    shuffler = random.Random(seed)
    modules: dict[str, list[pytest.Item]] = {}
    for item in items:
        modules.setdefault(item.nodeid.split("::", 1)[0], []).append(item)
    groups = list(modules.values())
    shuffler.shuffle(groups)
    for group in groups:
        shuffler.shuffle(group)
    items[:] = [item for group in groups for item in group]


# Not a real Argon2id hash: the store keeps whatever string it is given, and hashing costs
# tens of milliseconds that the store tests do not need to spend.
FAKE_PASSWORD_HASH = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2g"

_ids = itertools.count(1)


def msg_id(prefix: str = "m") -> str:
    """A fresh client_msg_id."""
    return f"{prefix}-{next(_ids)}"


def _cmid(client_msg_id: str | None, prefix: str) -> str:
    return msg_id(prefix) if client_msg_id is None else client_msg_id


@pytest.fixture
def ring() -> KeyRing:
    return KeyRing.generate()


async def make_user(
    store: Store,
    login: str,
    *,
    first_name: str = "Alice",
    last_name: str = "Martin",
    email: str = "",
    profession: str = "Médecin généraliste",
) -> User:
    return await store.create_user(
        NewUser(
            login,
            FAKE_PASSWORD_HASH,
            UserProfile(
                first_name=first_name,
                last_name=last_name,
                profession=profession,
                structure="CH de Test",
                email=email,
            ),
        )
    )


async def make_users(store: Store, *logins: str) -> list[int]:
    return [(await make_user(store, login)).id for login in logins]


async def create_conv(
    store: Store,
    sender: int,
    members: tuple[int, ...] | list[int],
    *,
    name: str = "Staff meeting",
    first: str | None = None,
    client_msg_id: str | None = None,
) -> AppendResult:
    return await store.apply(
        CreateConversation(
            sender=sender,
            members=tuple(members),
            name=name,
            client_msg_id=_cmid(client_msg_id, "create"),
            first_message=None if first is None else MessageBody(first),
        )
    )


async def post(
    store: Store,
    conv_id: int,
    sender: int,
    text: str,
    *,
    tag: MessageTag | None = None,
    client_msg_id: str | None = None,
) -> AppendResult:
    return await store.apply(
        PostMessage(conv_id, sender, MessageBody(text, tag), _cmid(client_msg_id, "post"))
    )


async def add_member(
    store: Store, conv_id: int, sender: int, user: int, *, client_msg_id: str | None = None
) -> AppendResult:
    return await store.apply(AddMember(conv_id, sender, user, _cmid(client_msg_id, "add")))


async def leave(
    store: Store, conv_id: int, sender: int, *, client_msg_id: str | None = None
) -> AppendResult:
    return await store.apply(Leave(conv_id, sender, _cmid(client_msg_id, "leave")))


async def rename(
    store: Store, conv_id: int, sender: int, name: str, *, client_msg_id: str | None = None
) -> AppendResult:
    return await store.apply(Rename(conv_id, sender, name, _cmid(client_msg_id, "rename")))


# ----------------------------------------------------------------------------- CLI


def chatd_env(data_dir: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a ``chatd`` subprocess: no inherited CHATD_* variable, and an
    English terminal (the admin command speaks the terminal's language; ``extra`` may set
    another one, or drop ``LANG`` with an empty value)."""
    locale_vars = ("LC_ALL", "LC_MESSAGES", "LANG", "LANGUAGE")
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("CHATD_") and k not in locale_vars
    }
    env["LANG"] = "en_GB.UTF-8"
    env["CHATD_DATA_DIR"] = str(data_dir)
    env.update(extra or {})
    return env


def run_chatd(
    data_dir: Path,
    *args: str,
    stdin: str | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m chatd ARGS`` as a real subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "chatd", *args],
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        env=chatd_env(data_dir, env),
        timeout=timeout,
        check=False,
    )
