"""Nothing in clear at rest on PostgreSQL: the canary written as message text, conversation
names and profiles is absent from the whole data directory (tables, indexes, WAL) and from
the server's log — a log that records every statement with its parameters, so this also
proves that no clear content ever reaches the database in a query."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import asyncpg

from chatd.crypto.keyring import KeyRing
from chatd.store.postgres.store import PostgresStore
from tests.conftest import add_member, create_conv, make_user, post, rename
from tests.servers.postgres import PostgresServer
from tests.store.test_at_rest import CANARY, forms

EVERY_STATEMENT = {
    "log_statement": "all",  # each statement, and with it its parameters
    "log_parameter_max_length": "-1",
    "log_min_error_statement": "debug5",
}


def every_byte(directory: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file())


async def test_the_canary_is_nowhere_in_the_data_directory_nor_the_log(
    tmp_path: Path, ring: KeyRing, postgres_factory: Callable[..., PostgresServer]
) -> None:
    server = postgres_factory(settings=EVERY_STATEMENT)
    dsn = server.create_database("canary")
    async with PostgresStore(dsn, ring, checkpoint_log=tmp_path / "c.checkpoints") as store:
        alice = await make_user(
            store,
            "visible.login",  # logins are clear metadata: our control that the scan works
            first_name=f"{CANARY}-first",
            last_name=f"{CANARY}-last",
            email=f"{CANARY}@example.org",
        )
        bob = await make_user(store, "bob")
        carol = await make_user(store, "carol", first_name=CANARY)
        conv = (
            await create_conv(
                store, alice.id, [bob.id], name=f"{CANARY} name", first=f"{CANARY} first"
            )
        ).conv_id
        for i in range(20):
            await post(store, conv, bob.id, f"{CANARY} message {i}")
        await rename(store, conv, alice.id, f"{CANARY} renamed")
        await add_member(store, conv, bob.id, carol.id)
        await store.set_user_disabled(carol.id, True)
        window = await store.visible_window(bob.id, conv)
        assert window.events[-3].payload["text"] == f"{CANARY} message 19"  # it is in there
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("CHECKPOINT")  # the tables' pages on disk, not only the WAL
    finally:
        await conn.close()
    data = every_byte(server.data_dir)
    log = server.log_path.read_bytes()
    assert b"visible.login" in data and b"visible.login" in log  # the scans see what is there
    for form in forms(CANARY):
        assert form not in data, f"{form!r} in clear in the data directory"
        # The log writes bytea parameters in hex: a bare run of hex digits would turn up in
        # some ciphertext by chance, so only the canary's letters are looked for there.
        if not all(c in b"0123456789abcdef" for c in form):
            assert form not in log, f"{form!r} in clear in the server's log"
