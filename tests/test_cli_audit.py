"""The administrators' audit log through the real ``chatd`` command (subprocesses).

Every administrator's action leaves exactly one record naming the operator's OS account, the
action and its target id, and nothing of the people involved (no login, no name, no password,
no one-time password); a refused action leaves none; raw SQL can neither change nor remove a
record; ``chatd verify`` reports a broken chain; ``chatd audit`` shows the log in French
first, filtered by date and action, or as JSON lines.
"""

from __future__ import annotations

import json
import os
import pwd
import sqlite3
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import pytest

from chatd.core.audit import ActionKind, Actor, ActorKind, AdminAction
from chatd.crypto.chain import audit_link_hash
from chatd.crypto.keyring import load_key_file
from chatd.store.sqlite import SqliteStore
from tests.conftest import create_conv, make_users, run_chatd

MS_PER_YEAR = 365.25 * 24 * 3600 * 1000
OPERATOR = pwd.getpwuid(os.geteuid()).pw_name
# The person the actions are about: every one of these must stay out of the audit log.
LOGIN, FIRST, LAST = "zq.4471", "Zéphyrine", "Quintavalle"
PASSWORD = "Orties-grimpantes-1987"
EMAIL = "zephyrine.q@example.org"


def ok(data_dir: Path, *args: str, stdin: str | None = None, **env: str) -> str:
    result = run_chatd(data_dir, *args, stdin=stdin, env=env or None)
    assert result.returncode == 0, (args, result.stdout, result.stderr)
    return result.stdout


def records(data_dir: Path) -> list[dict[str, object]]:
    out = ok(data_dir, "audit", "--json")
    return [json.loads(line) for line in out.splitlines()]


def brief(record: dict[str, object]) -> tuple[object, ...]:
    """(actor, action, target kind, target id, counts) of a ``chatd audit --json`` line."""
    actor, target = record["actor"], record["target"]
    assert isinstance(actor, dict) and isinstance(target, dict)
    return (
        (actor["kind"], actor["name"]),
        record["action"],
        target["kind"],
        target["id"],
        record["counts"],
    )


def database_bytes(data_dir: Path) -> bytes:
    db = data_dir / "chatd.sqlite3"
    companions = (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm"))
    return b"".join(p.read_bytes() for p in companions if p.exists())


def raw(data_dir: Path) -> sqlite3.Connection:
    return sqlite3.connect(data_dir / "chatd.sqlite3", isolation_level=None)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    path = tmp_path / "data"
    ok(path, "init")
    return path


async def test_every_admin_action_leaves_one_record_and_no_content(data_dir: Path) -> None:
    me = ("os_user", OPERATOR)
    expected: list[tuple[object, ...]] = []

    def step(*args: str, stdin: str | None = None) -> str:
        return ok(data_dir, *args, stdin=stdin)

    def one_more(*record: object) -> None:
        expected.append((me, *record))
        assert [brief(r) for r in records(data_dir)] == expected

    added = step(
        "user", "add", LOGIN, "--first-name", FIRST, "--last-name", LAST, "--email", EMAIL,
        "--json", stdin=PASSWORD + "\n",
    )  # fmt: skip
    user = json.loads(added)
    one_more("user_created", "user", str(user["id"]), {})
    step("user", "disable", LOGIN)
    one_more("user_disabled", "user", str(user["id"]), {})
    step("user", "enable", LOGIN)
    one_more("user_enabled", "user", str(user["id"]), {})
    reset = json.loads(step("user", "reset-password", LOGIN, "--json"))
    one_time = reset["one_time_password"]
    one_more("password_reset", "user", str(user["id"]), {"sessions_closed": 0})

    old_key = load_key_file(data_dir / "master.keys").active_id
    step("keys", "rotate")
    new_key = load_key_file(data_dir / "master.keys").active_id
    one_more("key_rotated", "key", new_key, {"data_keys": 2})  # the directory's, the log's
    step("keys", "retire", old_key)
    one_more("key_retired", "key", old_key, {})
    epoch = json.loads(step("store", "new-epoch", "--json"))["epoch"]
    one_more("epoch_declared", "epoch", epoch, {})

    eleven_years_ago = int(time.time() * 1000 - 11 * MS_PER_YEAR)
    ring = load_key_file(data_dir / "master.keys")
    db = data_dir / "chatd.sqlite3"
    async with SqliteStore(db, ring, clock_ms=lambda: eleven_years_ago) as store:
        a, b = await make_users(store, "alice", "bob")
        old = [(await create_conv(store, a, [b], first="old")).conv_id for _ in range(2)]
    assert run_chatd(data_dir, "retention", "run", "--dry-run").returncode == 1
    assert len(records(data_dir)) == len(expected)  # a dry run changes nothing: no record
    step("retention", "run", "--apply")
    for conv in old:
        expected.append(
            (me, "conversation_shredded", "conversation", str(conv), {"attachments": 0})
        )
    assert [brief(r) for r in records(data_dir)] == expected
    assert "OK" in step("verify")

    # Nothing of the person, in the log's rows, in its output, in the database file.
    shown = "".join(
        (
            ok(data_dir, "audit"),
            ok(data_dir, "audit", LANG="fr_FR.UTF-8"),
            json.dumps(records(data_dir)),
        )
    )
    with closing(raw(data_dir)) as conn:
        rows = repr(conn.execute("SELECT * FROM admin_audit").fetchall())
    for secret in (LOGIN, FIRST, LAST, EMAIL, PASSWORD, one_time):
        assert secret not in shown and secret not in rows, secret
    file = database_bytes(data_dir)
    for secret in (FIRST, LAST, EMAIL, PASSWORD, one_time):
        assert secret.encode() not in file, secret


def test_a_refused_action_leaves_no_record(data_dir: Path) -> None:
    weak = run_chatd(
        data_dir, "user", "add", "carol", "--first-name", "C", "--last-name", "D", stdin="short\n"
    )
    assert weak.returncode == 2
    assert run_chatd(data_dir, "user", "disable", "nobody").returncode == 1
    assert run_chatd(data_dir, "user", "reset-password", "nobody").returncode == 1
    active = load_key_file(data_dir / "master.keys").active_id
    assert run_chatd(data_dir, "keys", "retire", active).returncode == 3  # still in use
    assert run_chatd(data_dir, "keys", "retire", "deadbeef").returncode == 3  # unknown
    assert records(data_dir) == []
    assert "No administrator action recorded." in ok(data_dir, "audit")


AUDIT_TRIGGERS = ("admin_audit_no_update", "admin_audit_no_delete", "admin_audit_append_at_end")


def drop_audit_triggers(conn: sqlite3.Connection) -> None:
    for trigger in AUDIT_TRIGGERS:
        conn.execute(f"DROP TRIGGER {trigger}")


def some_actions(data_dir: Path) -> None:
    ok(data_dir, "user", "add", LOGIN, "--first-name", FIRST, "--last-name", LAST,
       stdin=PASSWORD + "\n")  # fmt: skip
    ok(data_dir, "user", "disable", LOGIN)
    ok(data_dir, "user", "enable", LOGIN)


def test_raw_sql_can_neither_change_nor_remove_a_record(data_dir: Path) -> None:
    some_actions(data_dir)
    before = records(data_dir)
    with closing(raw(data_dir)) as conn:
        for sql in (
            "UPDATE admin_audit SET actor = 'someone else' WHERE seq = 2",
            "UPDATE admin_audit SET action = 'user_enabled', target = '9'",
            "DELETE FROM admin_audit WHERE seq = 3",
            "DELETE FROM admin_audit",
            "INSERT INTO admin_audit SELECT * FROM admin_audit WHERE seq = 1",
        ):
            with pytest.raises(sqlite3.IntegrityError, match="admin audit"):
                conn.execute(sql)
    assert records(data_dir) == before
    assert "OK" in ok(data_dir, "verify")


def rewrite_actor(conn: sqlite3.Connection) -> None:
    conn.execute("UPDATE admin_audit SET actor = 'someone-else' WHERE seq = 2")


def remove_the_middle(conn: sqlite3.Connection) -> None:
    conn.execute("DELETE FROM admin_audit WHERE seq = 2")


def relink(conn: sqlite3.Connection) -> None:
    """Record 2 removed and record 3 renumbered into its place: no gap left."""
    conn.execute("DELETE FROM admin_audit WHERE seq = 2")
    conn.execute("UPDATE admin_audit SET seq = 2 WHERE seq = 3")


def recompute_the_chain(conn: sqlite3.Connection) -> None:
    """Record 2 rewritten and the chain after it recomputed, without the key file."""
    rows = conn.execute(
        "SELECT seq, at, actor_kind, actor, action, target, counts FROM admin_audit ORDER BY seq"
    ).fetchall()
    prev = conn.execute("SELECT hash FROM admin_audit WHERE seq = 1").fetchone()[0]
    for seq, at, actor_kind, actor, kind, target, counts in rows[1:]:
        if seq == 2:
            actor = "someone-else"
        who = Actor(ActorKind(actor_kind), actor)
        forged = AdminAction(who, ActionKind(kind), target, json.loads(counts))
        digest = audit_link_hash(bytes(32), prev, seq, at, forged)
        conn.execute(
            "UPDATE admin_audit SET actor = ?, prev_hash = ?, hash = ? WHERE seq = ?",
            (actor, prev, digest, seq),
        )
        prev = digest


def remove_the_key(conn: sqlite3.Connection) -> None:
    conn.execute("DROP TRIGGER data_keys_no_delete")
    conn.execute("DELETE FROM data_keys WHERE scope = 'audit'")


def swap_the_key(conn: sqlite3.Connection) -> None:
    """The directory's wrapped key put in the log key's row (a key the attacker can move)."""
    conn.execute(
        "UPDATE data_keys SET wrapped = (SELECT wrapped FROM data_keys WHERE scope = 'directory')"
        " WHERE scope = 'audit'"
    )


def forge_counts(conn: sqlite3.Connection) -> None:
    conn.execute("UPDATE admin_audit SET counts = '{\"x\":1}' WHERE seq = 2")


@pytest.mark.parametrize(
    ("tamper", "record", "reason"),
    [
        (rewrite_actor, 2, "hash mismatch: the record was altered"),
        (remove_the_middle, 2, "record missing (gap in seqs)"),
        (relink, 2, "prev_hash does not link to the record before"),
        (recompute_the_chain, 2, "hash mismatch: the record was altered"),
        (forge_counts, 2, "a field holds a value chatd never writes"),
        (remove_the_key, 1, "the audit log has no key"),
        (swap_the_key, 1, "the audit log's key: The data key of audit 0 does not unwrap"),
    ],
)
def test_chatd_verify_reports_a_broken_audit_chain(
    data_dir: Path, tamper: Callable[[sqlite3.Connection], None], record: int, reason: str
) -> None:
    some_actions(data_dir)
    with closing(raw(data_dir)) as conn:
        drop_audit_triggers(conn)
        tamper(conn)
    result = run_chatd(data_dir, "verify", "--json")
    assert result.returncode == 1, result
    assert f"BROKEN admin audit log, record {record}: {reason}" in result.stderr
    report = json.loads(result.stdout)
    found = [(p["audit_record"], p["reason"]) for p in report["problems"] if "audit_record" in p]
    assert len(found) == 1 and found[0][0] == record and found[0][1].startswith(reason)
    # Dropping the triggers to get there is itself seen: the schema is not the migrations'.
    schema = {p["reason"] for p in report["problems"] if "audit_record" not in p}
    assert {f"schema: the trigger {name} is missing" for name in AUDIT_TRIGGERS} <= schema
    # A log cut or rewritten at its end also departs from its last checkpoint (issue 13).
    behind = {r for r in schema if r.startswith("the admin audit log ")}
    assert bool(behind) == (tamper in (relink, recompute_the_chain)), behind
    assert all(
        r.startswith("schema: the trigger ") and r.endswith(" is missing") for r in schema - behind
    )
    french = run_chatd(data_dir, "verify", env={"LANG": "fr_FR.UTF-8"})
    assert french.returncode == 1
    assert f"journal d'audit des administrateurs, enregistrement {record}\u00a0:" in french.stderr


def test_chatd_audit_speaks_french_and_filters(data_dir: Path) -> None:
    some_actions(data_dir)
    french = ok(data_dir, "audit", LANG="fr_FR.UTF-8").splitlines()
    assert len(french) == 3
    assert f"opérateur {OPERATOR}" in french[0] and french[0].endswith("compte 1 créé")
    assert french[1].endswith("compte 1 désactivé") and french[2].endswith("compte 1 réactivé")
    english = ok(data_dir, "audit").splitlines()
    assert english[0].split()[0] == "1" and english[0].endswith(
        f"operator {OPERATOR}  account 1 created"
    )

    only = records_of(data_dir, "--action", "user_disabled", "--action", "user_created")
    assert [r["action"] for r in only] == ["user_created", "user_disabled"]
    assert records_of(data_dir, "--since", "2000-01-01", "--before", "2100-01-01") == records(
        data_dir
    )
    assert records_of(data_dir, "--since", "2100-01-01T00:00") == []
    assert records_of(data_dir, "--before", "2000-01-01") == []
    none = ok(data_dir, "audit", "--since", "2100-01-01", LANG="fr_FR.UTF-8")
    assert none.strip() == "Aucune action d'administration enregistrée."
    bad = run_chatd(data_dir, "audit", "--since", "yesterday", env={"LANG": "fr_FR.UTF-8"})
    assert bad.returncode == 2
    assert "«\u00a0yesterday\u00a0» n'est pas une date" in bad.stderr
    assert "Traceback" not in bad.stderr


def records_of(data_dir: Path, *options: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in ok(data_dir, "audit", "--json", *options).splitlines()]
