"""The single writer: pipelined group commit of conversation operations (design §3).

Why one writer task: SQLite has one write lock per database, so concurrent writers would only
queue on it; doing the queueing ourselves lets us *batch*.  Operations wait in ``_queue``; the
writer takes what is there, plans it (rules, seqs, seals, hash chain — see
:class:`chatd.store.planner.BatchPlanner`; the SQL around it is in :mod:`.batch`) and writes
the plan in one transaction named ``append_batch``.  Each caller's future is resolved only
after COMMIT returned, i.e. after the WAL was fsynced (``synchronous=FULL``): ack means
durable.

Pipelining.  Planning is Python on the event loop; writing and fsync happen in SQLite's
thread, mostly without the GIL.  So while batch N is being written and committed, the writer
already plans batch N+1 on top of N's (uncommitted) outcome.  At most one batch is in flight.
If N fails to commit, N+1 was planned on a state that never existed: it is failed too (its
callers retry with the same ``client_msg_id``, which is safe), and the cache is dropped.
(Splitting a long queue in two so that there is always something to plan was measured: it
lost ~15 % at 100 writers, the second fsync costing more than the overlap gained.)

The reads planning needs (idempotency keys, a conversation not in the cache, which users
exist) use their own connection, so they do not queue behind the in-flight batch.  They see
committed data only, which is why the in-flight batch's idempotency keys are consulted too.

Operations that fail a rule fail alone: their futures get the error, nothing of theirs is
written.  Other writes (users, key rotation, shredding) are *exclusive jobs*: each runs in its
own named transaction, in queue order, with nothing in flight.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import aiosqlite

from chatd.core.conversations import CreateConversation, Operation, referenced_users
from chatd.core.errors import ChatdError, StoreClosedError, UnavailableError
from chatd.core.records import AppendResult
from chatd.crypto.row_macs import RowMacs
from chatd.i18n import N_
from chatd.store.data_keys import DataKeys
from chatd.store.planner import BatchPlanner, ConvCache, IdemKey, IdemValue, Plan
from chatd.store.sqlite.batch import (
    active_users_txn,
    known_keys_txn,
    load_convs_txn,
    max_conv_id_txn,
    write_plan_txn,
)
from chatd.store.sqlite.claims import load_claimables_txn
from chatd.store.sqlite.db import transaction

log = logging.getLogger("chatd.store.writer")
NOT_STORED = N_("The message could not be stored; retry.")
T = TypeVar("T")


@dataclass(slots=True)
class _OpRequest:
    op: Operation
    future: asyncio.Future[AppendResult]


@dataclass(slots=True)
class _Job:
    name: str
    run: Callable[[aiosqlite.Connection], Awaitable[Any]]
    future: asyncio.Future[Any]
    keeps_conversation_cache: bool


@dataclass(slots=True)
class _InFlight:
    plan: Plan
    requests: list[_OpRequest]
    task: asyncio.Task[bool]


_STOP = object()


class GroupCommitWriter:
    def __init__(
        self,
        conn: aiosqlite.Connection,
        load_conn: aiosqlite.Connection,
        data_keys: DataKeys,
        *,
        max_batch: int,
        clock_ms: Callable[[], int],
        cache_size: int = 10_000,
    ) -> None:
        self._conn = conn
        self._load_conn = load_conn
        self._planner = BatchPlanner(data_keys, cache_size)
        self._max_batch = max_batch
        self._clock_ms = clock_ms
        self._queue: asyncio.Queue[_OpRequest | _Job | object] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._inflight: _InFlight | None = None
        self._closing = False
        self.batches = 0  # group commits so far (benchmarks report the mean batch size)
        # Told the heads each commit left, once committed: the checkpointer's feed and the
        # head journal's (:mod:`.head_watch`).
        self.on_commit: list[Callable[[dict[int, tuple[int, bytes]]], None]] = []

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="chatd-writer")

    async def stop(self) -> None:
        """Let every queued write finish, then stop."""
        if self._task is None or self._closing:
            return
        self._closing = True
        self._queue.put_nowait(_STOP)
        await self._task

    async def apply(self, op: Operation) -> AppendResult:
        if self._closing or self._task is None:
            raise StoreClosedError()
        future: asyncio.Future[AppendResult] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_OpRequest(op, future))
        return await future

    async def run_exclusive(
        self,
        name: str,
        run: Callable[[aiosqlite.Connection], Awaitable[T]],
        *,
        keeps_conversation_cache: bool = False,
    ) -> T:
        """Run ``run(conn)`` inside its own write transaction ``name``, in queue order.

        Afterwards the conversation cache is dropped, unless the caller vouches that ``run``
        changes nothing the cache holds (conversations, memberships, their data keys): a job
        that only touches tokens, read markers or users keeps the cache warm."""
        if self._closing or self._task is None:
            raise StoreClosedError()
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Job(name, run, future, keeps_conversation_cache))
        return await future

    # ------------------------------------------------------------------ loop

    async def _run(self) -> None:
        try:
            await self._loop()
        except BaseException:
            # A bug here must not leave callers waiting forever: fail what is queued.
            log.exception("the store writer stopped")
            self._closing = True
            while not self._queue.empty():
                item = self._queue.get_nowait()
                if isinstance(item, (_OpRequest, _Job)):
                    _settle(item.future, StoreClosedError())
            raise

    async def _loop(self) -> None:
        while True:
            first = await self._queue.get()
            limit = self._max_batch
            ops: list[_OpRequest] = []
            stop_after = False
            item: object = first
            while True:
                if isinstance(item, _OpRequest):
                    ops.append(item)
                else:
                    # A job or the stop marker: commit what came before it, then handle it.
                    await self._plan_and_launch(ops)
                    ops = []
                    await self._settle_inflight()
                    if isinstance(item, _Job):
                        await self._run_job(item)
                    else:
                        stop_after = True
                        break
                if len(ops) >= limit or self._queue.empty():
                    break
                item = self._queue.get_nowait()
            await self._plan_and_launch(ops)
            if stop_after:
                await self._settle_inflight()
                return

    async def _run_job(self, job: _Job) -> None:
        try:
            async with transaction(self._conn, job.name):
                result = await job.run(self._conn)
        except Exception as exc:
            _settle(job.future, exc)
        else:
            if not job.future.done():
                job.future.set_result(result)
        finally:
            if not job.keeps_conversation_cache:
                self._planner.reset()  # the job may have shredded or re-keyed: reload lazily

    async def _plan_and_launch(self, ops: list[_OpRequest]) -> None:
        if not ops:
            return
        if self._inflight is not None and self._inflight.task.done():
            # Finished already: settle it now, so that a failed batch's idempotency keys are
            # never taken for committed ones, and its reset happens before we plan.
            await self._settle_inflight()
        generation = self._planner.generation
        try:
            plan = await self._plan([r.op for r in ops])
        except Exception as exc:
            log.exception("planning a batch of %d operations failed", len(ops))
            self._fail(ops, exc)
            self._planner.reset()
            return
        await self._settle_inflight()
        if self._planner.generation != generation:
            # The batch in flight failed while this one was planned on top of it.
            self._fail(ops, UnavailableError(NOT_STORED))
            self._planner.reset(plan.new_convs)
            return
        task = asyncio.get_running_loop().create_task(self._commit(plan, ops))
        self._inflight = _InFlight(plan, ops, task)

    async def _settle_inflight(self) -> bool:
        """Wait for the batch in flight, if any; False if it failed."""
        inflight, self._inflight = self._inflight, None
        if inflight is None:
            return True
        return await inflight.task

    async def _plan(self, ops: list[Operation]) -> Plan:
        planner = self._planner
        wanted = {u for op in ops for u in referenced_users(op)}
        missing = planner.missing(ops)
        creates = any(isinstance(op, CreateConversation) for op in ops)
        loaded: dict[int, ConvCache] = {}
        floor = 0
        async with transaction(self._load_conn, "plan_batch_reads", write=False):
            known, untrusted = await known_keys_txn(
                self._load_conn, ops, RowMacs(planner.keys.ring)
            )
            active = await active_users_txn(self._load_conn, wanted) if wanted else set()
            if missing:
                loaded = await load_convs_txn(self._load_conn, planner.keys, missing)
            if creates and planner.next_conv_id == 0:
                floor = await max_conv_id_txn(self._load_conn) + 1
            in_flight = self._inflight.plan.claims if self._inflight is not None else {}
            attachments = await load_claimables_txn(
                self._load_conn, planner.keys.ring, ops, in_flight
            )
        for conv_id, conv in loaded.items():
            if conv_id not in planner.convs:
                planner.convs[conv_id] = conv
        if floor:
            planner.next_conv_id = floor
        inflight = self._inflight
        if inflight is not None:
            known = _overlay(known, inflight.plan.keys)
        plan = planner.plan(ops, known, active, self._clock_ms(), attachments, untrusted)
        keep = set(plan.touched) | (set(inflight.plan.touched) if inflight else set())
        planner.evict(keep)
        return plan

    async def _commit(self, plan: Plan, requests: list[_OpRequest]) -> bool:
        started = time.perf_counter()
        try:
            async with transaction(self._conn, "append_batch"):
                await write_plan_txn(self._conn, plan)
        except Exception as exc:
            if isinstance(exc, ChatdError):
                error: ChatdError = exc
            else:
                log.warning("append_batch failed (%d operations): %s", len(requests), exc)
                error = UnavailableError(NOT_STORED)
            self._fail(requests, error)
            self._planner.reset(plan.new_convs)
            return False
        self.batches += 1
        if plan.heads:
            heads = {conv: (head[0], head[1]) for conv, head in plan.heads.items()}
            for listener in self.on_commit:
                listener(heads)
        for request, outcome in zip(requests, plan.outcomes, strict=True):
            if request.future.done():  # the caller was cancelled; the write stands
                continue
            if isinstance(outcome, ChatdError):
                request.future.set_exception(outcome)
            else:
                request.future.set_result(outcome)
        elapsed_ms = (time.perf_counter() - started) * 1000
        if elapsed_ms > 500:
            log.warning("append_batch of %d took %.0f ms", len(requests), elapsed_ms)
        return True

    @staticmethod
    def _fail(requests: list[_OpRequest], error: BaseException) -> None:
        for request in requests:
            _settle(request.future, error)


def _overlay(
    known: dict[IdemKey, IdemValue], inflight: dict[IdemKey, IdemValue]
) -> dict[IdemKey, IdemValue]:
    if not inflight:
        return known
    merged = dict(inflight)
    merged.update(known)
    return merged


def _settle(future: asyncio.Future[Any], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)
