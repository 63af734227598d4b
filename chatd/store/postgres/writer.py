"""This node's group commit of conversation operations on PostgreSQL.

As on SQLite (:mod:`chatd.store.sqlite.writer`), operations wait in a queue; the writer
takes what is there (up to ``max_batch``), decides, numbers, seals and chains it with the
same :class:`~chatd.store.planner.BatchPlanner`, and writes it in one transaction named
``append_batch``.  Each caller's future is resolved after COMMIT returned, and COMMIT only
returns once the WAL is flushed (``synchronous_commit`` is checked at connect): ack means
durable.

What differs is that other nodes append to the same conversations.  So each batch plans
**inside** its transaction, after locking the heads it appends to (:mod:`.batch`): a
conversation another node moved is reloaded under the lock, and the seqs stay dense (1, 2,
3… with no gap and no duplicate) whatever the nodes do.  For the same reason there is no
pipelining: a batch cannot be planned on top of one whose locks it does not hold yet.
Different conversations commit in parallel on different nodes; one conversation's appenders
take turns on its row lock, one batch at a time.

A batch that loses a race another node won is planned again from the start, up to
``ATTEMPTS`` times: a creation retried on two nodes at once (the second insert of its
idempotency key fails), an attachment claimed by both (:class:`~.claims.ClaimRace`), a
deadlock or a serialization failure.  The second plan sees the winner's rows: the retry
gets the first result, the second claim is refused by the rules.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import asyncpg

from chatd.core.conversations import CreateConversation, Operation, referenced_users
from chatd.core.errors import ChatdError, StoreClosedError, UnavailableError
from chatd.core.records import AppendResult
from chatd.crypto.row_macs import RowMacs
from chatd.i18n import N_
from chatd.store.data_keys import DataKeys
from chatd.store.planner import BatchPlanner, Plan
from chatd.store.postgres.batch import (
    active_users_txn,
    known_keys_txn,
    load_convs_txn,
    lock_heads_txn,
    reserve_conv_ids_txn,
    stale_conversations,
    write_plan_txn,
)
from chatd.store.postgres.claims import ClaimRace, load_claimables_txn
from chatd.store.postgres.db import Connection, Pool, transaction
from chatd.store.postgres.failures import translating

log = logging.getLogger("chatd.store.writer")
NOT_STORED = N_("The message could not be stored; retry.")
ATTEMPTS = 5
# Races another node may win: the batch is planned again on what it committed.
LOST_RACES = (
    ClaimRace,
    asyncpg.UniqueViolationError,
    asyncpg.SerializationError,
    asyncpg.DeadlockDetectedError,
)


@dataclass(slots=True)
class _OpRequest:
    op: Operation
    future: asyncio.Future[AppendResult]


_STOP = object()


class GroupCommitWriter:
    def __init__(
        self,
        pool: Pool,
        data_keys: DataKeys,
        *,
        max_batch: int,
        clock_ms: Callable[[], int],
        cache_size: int = 10_000,
    ) -> None:
        self._pool = pool
        self._planner = BatchPlanner(data_keys, cache_size)
        self._max_batch = max_batch
        self._clock_ms = clock_ms
        self._queue: asyncio.Queue[_OpRequest | object] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._forget = False
        self.batches = 0  # group commits so far (benchmarks report the mean batch size)
        self.replans = 0  # batches planned again after losing a race to another node
        # Told the heads each commit left, once committed.
        self.on_commit: Callable[[dict[int, tuple[int, bytes]]], None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="chatd-writer")

    async def stop(self) -> None:
        """Let every queued operation finish, then stop."""
        if self._task is None or self._closing:
            return
        self._closing = True
        self._queue.put_nowait(_STOP)
        await self._task

    def forget_conversations(self) -> None:
        """Drop the conversation cache before the next batch (a write outside the writer
        changed conversations: shredding, re-keying).  Not at once: a batch may be planning."""
        self._forget = True

    async def apply(self, op: Operation) -> AppendResult:
        if self._closing or self._task is None:
            raise StoreClosedError()
        future: asyncio.Future[AppendResult] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_OpRequest(op, future))
        return await future

    # ------------------------------------------------------------------ loop

    async def _run(self) -> None:
        try:
            while True:
                item = await self._queue.get()
                requests: list[_OpRequest] = []
                while isinstance(item, _OpRequest):
                    requests.append(item)
                    if len(requests) >= self._max_batch or self._queue.empty():
                        item = None
                        break
                    item = self._queue.get_nowait()
                if requests:
                    await self._commit_batch(requests)
                if item is _STOP:
                    return
        except BaseException:
            # A bug here must not leave callers waiting forever: fail what is queued.
            log.exception("the store writer stopped")
            self._closing = True
            while not self._queue.empty():
                queued = self._queue.get_nowait()
                if isinstance(queued, _OpRequest):
                    _settle(queued.future, StoreClosedError())
            raise

    async def _commit_batch(self, requests: list[_OpRequest]) -> None:
        ops = [r.op for r in requests]
        started = time.perf_counter()
        for attempt in range(1, ATTEMPTS + 1):
            plan: Plan | None = None
            if self._forget:
                self._forget = False
                self._planner.reset()
            try:
                async with (
                    translating(),
                    self._pool.acquire() as conn,
                    transaction(conn, "append_batch"),
                ):
                    plan = await self._plan_txn(conn, ops)
                    await write_plan_txn(conn, plan)
            except LOST_RACES as exc:
                self._planner.reset(plan.new_convs if plan else ())
                if attempt < ATTEMPTS:
                    self.replans += 1
                    log.debug("append_batch planned again after %s", type(exc).__name__)
                    continue
                log.warning("append_batch lost %d races in a row", ATTEMPTS)
                self._fail(requests, UnavailableError(NOT_STORED))
                return
            except Exception as exc:
                self._planner.reset(plan.new_convs if plan else ())
                if isinstance(exc, ChatdError):
                    error: ChatdError = exc
                else:
                    log.warning("append_batch failed (%d operations): %s", len(requests), exc)
                    error = UnavailableError(NOT_STORED)
                self._fail(requests, error)
                return
            self._committed(plan, requests)
            break
        elapsed_ms = (time.perf_counter() - started) * 1000
        if elapsed_ms > 500:
            log.warning("append_batch of %d took %.0f ms", len(requests), elapsed_ms)

    async def _plan_txn(self, conn: Connection, ops: list[Operation]) -> Plan:
        """Lock the heads, bring the cache up to them, read what the rules need, plan."""
        planner = self._planner
        heads = await lock_heads_txn(conn, (op.conv_id for op in ops if op.conv_id))
        for conv_id in stale_conversations(planner.convs, heads):
            del planner.convs[conv_id]
        missing = planner.missing(ops)
        if missing:
            planner.convs.update(await load_convs_txn(conn, planner.keys, missing))
        ring = planner.keys.ring
        known, untrusted = await known_keys_txn(conn, ops, RowMacs(ring))
        wanted = {u for op in ops for u in referenced_users(op)}
        active = await active_users_txn(conn, wanted) if wanted else set()
        creations = sum(isinstance(op, CreateConversation) for op in ops)
        planner.reserved_ids = await reserve_conv_ids_txn(conn, creations) if creations else []
        attachments = await load_claimables_txn(conn, ring, ops)
        plan = planner.plan(ops, known, active, self._clock_ms(), attachments, untrusted)
        planner.evict(set(plan.touched))
        return plan

    def _committed(self, plan: Plan, requests: list[_OpRequest]) -> None:
        self.batches += 1
        if self.on_commit is not None and plan.heads:
            self.on_commit({conv: (head[0], head[1]) for conv, head in plan.heads.items()})
        for request, outcome in zip(requests, plan.outcomes, strict=True):
            if request.future.done():  # the caller was cancelled; the write stands
                continue
            if isinstance(outcome, ChatdError):
                request.future.set_exception(outcome)
            else:
                request.future.set_result(outcome)

    @staticmethod
    def _fail(requests: list[_OpRequest], error: BaseException) -> None:
        for request in requests:
            _settle(request.future, error)


def _settle(future: asyncio.Future[AppendResult], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)
