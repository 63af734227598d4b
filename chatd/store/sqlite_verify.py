"""``chatd verify``: walk every conversation's hash chain and open every seal.

A tampered database is found however it was tampered with:

* a byte changed in a ciphertext → the seal does not open and the recomputed hash differs;
* a row removed → a gap in the seqs, or the log ends before ``conversations.last_seq``;
* two rows swapped → their recomputed hashes and AADs no longer fit their place;
* a whole row rewritten with a consistent hash → the next row's ``prev_hash`` breaks.

The first broken seq of each conversation is reported (what follows a break cannot be trusted
and would only repeat it).  Shredded conversations keep their chain, which is still checked;
their seals cannot be opened any more, by design.
"""

from __future__ import annotations

from collections.abc import Sequence

import aiosqlite
import msgpack

from chatd.crypto.chain import GENESIS, link_hash
from chatd.crypto.envelope import KeyScope, WrappedKey, sealed_key_version
from chatd.errors import IntegrityError
from chatd.store.data_keys import CONV_SCOPE, CONV_STATE_DOMAIN, EVENTS_DOMAIN, DataKeys
from chatd.store.records import VerifyProblem, VerifyReport

CHUNK = 2000


async def verify_chains_txn(
    conn: aiosqlite.Connection, keys: DataKeys, conv_ids: Sequence[int] | None
) -> VerifyReport:
    rows = await conn.execute_fetchall(
        "SELECT id, last_seq, last_hash, name, shredded_at FROM conversations ORDER BY id"
    )
    convs = {int(r[0]): (int(r[0]), int(r[1]), r[2], r[3], r[4]) for r in rows}
    problems: list[VerifyProblem] = []
    logged = {int(r[0]) for r in await conn.execute_fetchall("SELECT DISTINCT conv_id FROM events")}
    for orphan in sorted(logged - convs.keys()):
        problems.append(VerifyProblem(orphan, 1, "events of a conversation that does not exist"))
    selected = sorted(convs) if conv_ids is None else [c for c in conv_ids if c in convs]
    total = 0
    for conv_id in selected:
        count, problem = await _verify_one_txn(conn, keys, convs[conv_id])
        total += count
        if problem is not None:
            problems.append(problem)
    return VerifyReport(len(selected), total, tuple(problems))


async def _verify_one_txn(
    conn: aiosqlite.Connection, keys: DataKeys, conv: tuple[int, int, bytes, bytes, int | None]
) -> tuple[int, VerifyProblem | None]:
    conv_id, last_seq, last_hash, sealed_name, shredded_at = conv
    live: set[int] = set()
    if shredded_at is None:
        for version, kek_id, blob in await conn.execute_fetchall(
            "SELECT version, kek_id, wrapped FROM data_keys WHERE scope = ? AND scope_id = ?"
            " AND destroyed_at IS NULL",
            (CONV_SCOPE, conv_id),
        ):
            try:
                keys.load(KeyScope(CONV_SCOPE, conv_id, version), WrappedKey(kek_id, blob))
            except IntegrityError as exc:
                return 0, VerifyProblem(conv_id, 0, f"data key: {exc.message}")
            live.add(int(version))
        if not live:
            return 0, VerifyProblem(conv_id, 0, "no live data key for a conversation in use")
        try:
            version = sealed_key_version(sealed_name)
            keys.sealer(CONV_SCOPE, conv_id, version, CONV_STATE_DOMAIN, conv_id).open(
                0,
                "name",
                sealed_name,
            )
        except (IntegrityError, KeyError):
            return 0, VerifyProblem(conv_id, 0, "the sealed conversation name does not open")

    expected, prev, count = 1, GENESIS, 0
    while True:
        rows = list(
            await conn.execute_fetchall(
                "SELECT seq, kind, ciphertext, prev_hash, hash FROM events"
                " WHERE conv_id = ? AND seq >= ? ORDER BY seq LIMIT ?",
                (conv_id, expected, CHUNK),
            )
        )
        for seq, kind, ciphertext, prev_hash, stored_hash in rows:
            count += 1
            if seq != expected:
                return count, VerifyProblem(conv_id, expected, "event missing (gap in seqs)")
            if prev_hash != prev:
                return count, VerifyProblem(
                    conv_id, seq, "prev_hash does not link to the event before"
                )
            digest = link_hash(prev, conv_id, seq, kind, ciphertext)
            if digest != stored_hash:
                return count, VerifyProblem(conv_id, seq, "hash mismatch: the row was altered")
            if live:
                try:
                    version = sealed_key_version(ciphertext)
                    if version not in live:
                        raise IntegrityError("sealed under an unknown key version")
                    sealer = keys.sealer(CONV_SCOPE, conv_id, version, EVENTS_DOMAIN, conv_id)
                    msgpack.unpackb(sealer.open(seq, kind, ciphertext))
                except (IntegrityError, ValueError) as exc:
                    return count, VerifyProblem(conv_id, seq, f"seal does not open: {exc}")
            prev, expected = digest, seq + 1
        if len(rows) < CHUNK:
            break
    if expected - 1 != last_seq:
        return count, VerifyProblem(
            conv_id,
            expected,
            f"the log ends at seq {expected - 1} but the conversation"
            f" records {last_seq} events (rows removed)",
        )
    if prev != last_hash:
        return count, VerifyProblem(
            conv_id, last_seq, "the last hash differs from the conversation's"
        )
    return count, None
