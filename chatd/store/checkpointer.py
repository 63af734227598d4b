"""Taking checkpoints: when, of what, and appending them to the log (any backend).

The writer tells the checkpointer the heads each group commit left, once committed
(:meth:`Checkpointer.note`), so a periodic checkpoint reads nothing back for the
conversations: it is folded into the group commits, costing one MACed line and one fsync
every ``interval`` seconds under writes, nothing when idle.  The admin audit log's head is read
at each checkpoint (admin commands append to it from other processes).  A checkpoint is taken
every ``interval`` seconds when something moved, and on every clean stop.

Under the log's flock, a checkpointer first reads what other processes appended (an admin
command beside the server) and replays it, so that every process appends to the same map.
A checkpoint only ever records committed heads, and never a head behind the one the log
holds: only an operator's declared rewind (:meth:`Checkpointer.declare_rewind`) does that.

When the log cannot be trusted (a line that is not a record, a broken link, a wrong MAC),
the checkpointer stops appending: it reports the problem (``chatd serve`` refuses to start,
``chatd verify`` names it) rather than extend a log it cannot vouch for.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from typing import Protocol

from chatd.core.checkpoint_audit import (
    CheckpointState,
    Departure,
    LogAudit,
    RawLine,
    audit_records,
    departures,
)
from chatd.core.checkpoints import (
    CHECKPOINT_KEY_LABEL,
    NO_PREVIOUS,
    Checkpoint,
    Head,
    HeadMap,
    RecordKind,
    conversation_chain,
    line_hash,
)
from chatd.crypto.keyring import KeyRing
from chatd.i18n import N_, Text
from chatd.store.checkpoint_log import CheckpointLog

log = logging.getLogger("chatd.store.checkpoints")
MIN_BASE_ENTRIES = 64  # below this, a base costs less than replaying deltas ever will


class ChainReads(Protocol):
    """What the checkpointer reads from its backend, each in one snapshot."""

    async def all_heads(self) -> dict[str, Head]: ...

    async def admin_audit_head(self) -> dict[str, Head]: ...

    async def facts(self, heads: Mapping[str, Head]) -> tuple[dict[str, bytes], dict[str, int]]:
        """For each chain of ``heads``: the database's hash at that seq, and its last seq."""
        ...

    async def schema_version(self) -> int: ...


def checkpoint_key(ring: KeyRing, kid: str) -> bytes | None:
    return ring.derived(kid, CHECKPOINT_KEY_LABEL) if kid in ring.keys else None


class Checkpointer:
    def __init__(
        self,
        log_file: CheckpointLog,
        ring: KeyRing,
        reads: ChainReads,
        *,
        epoch: Callable[[], str],
        clock_ms: Callable[[], int],
        interval: float,
    ) -> None:
        self.log = log_file
        self._ring = ring
        self._reads = reads
        self._epoch = epoch
        self._clock_ms = clock_ms
        self._interval = interval
        self._map = HeadMap()
        self._last: Checkpoint | None = None
        self._last_hash = NO_PREVIOUS
        self._end = 0
        self._since_base = 0  # head entries in the deltas after the last base
        self._pending: dict[str, Head] = {}
        self._problems: list[Text] = []
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._taken = asyncio.Condition()

    # ------------------------------------------------------------------ state

    @property
    def state(self) -> CheckpointState:
        return CheckpointState(self._last, tuple(self._problems))

    def use_ring(self, ring: KeyRing) -> None:
        self._ring = ring

    def note(self, heads: Mapping[int, tuple[int, bytes]]) -> None:
        """Committed heads of conversations, from the writer (no I/O: called per commit)."""
        for conv_id, (seq, digest) in heads.items():
            self._pending[conversation_chain(conv_id)] = Head(seq, digest)

    # ------------------------------------------------------------------ lifecycle

    async def open(self, *, expects_log: Callable[[], Awaitable[bool]]) -> None:
        """Read the log's tail.  Without a log: start one, unless ``expects_log`` says the
        database should have one (it holds history written under checkpoints), in which
        case the missing log is a problem: it was lost, or removed to hide a rewind."""
        if not await asyncio.to_thread(self.log.exists):
            if await expects_log():
                self._problems.append(
                    Text(
                        N_(
                            "there is no checkpoint log at {path} for a database that holds history"
                        ),
                        {"path": str(self.log.path)},
                    )
                )
            else:
                await self.take(force=True)
            return
        lines, end = await asyncio.to_thread(self.log.read_tail)
        audit = audit_records(lines, self._key_for, from_base=True)
        self._adopt(audit, lines, end)

    def start(self) -> None:
        if self._task is None and not self._problems:
            self._task = asyncio.get_running_loop().create_task(
                self._every_interval(), name="chatd-checkpoints"
            )

    async def close(self) -> None:
        """Stop the periodic checkpoints and take the clean stop's (the caller has stopped
        the writer: every commit has been noted)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if not self._problems:
            try:
                await self.take()
            except Exception:  # the stop goes on; the next start compares anyway
                log.exception("the checkpoint of a clean stop failed")

    async def _every_interval(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.take()
            except Exception:
                log.exception("taking a checkpoint failed; retrying at the next interval")

    # ------------------------------------------------------------------ taking one

    async def take(self, *, force: bool = False) -> Checkpoint | None:
        """Append a checkpoint if a head moved (``force``: even if none did); None if not."""
        async with self._lock:
            if self._problems:
                return None
            pending, self._pending = self._pending, {}
            try:
                return await self._take_locked(pending, force)
            except BaseException:
                self._pending = pending | self._pending  # taken again next time
                raise

    async def _take_locked(self, pending: dict[str, Head], force: bool) -> Checkpoint | None:
        async with self._log_locked() as fd:
            await self._catch_up()
            if self._problems:
                return None
            if self._last is None:
                current = await self._reads.all_heads()
            else:
                current = pending | await self._reads.admin_audit_head()
            moved = self._map.moved(current)
            epoch, schema = self._epoch(), await self._reads.schema_version()
            last = self._last
            unchanged = last is not None and (last.epoch, last.schema) == (epoch, schema)
            if unchanged and not (moved or force):
                return None
            base = last is None or self._since_base + len(moved) > max(
                len(self._map.heads), MIN_BASE_ENTRIES
            )
            undo = self._map.advance(moved)
            kind = RecordKind.BASE if base else RecordKind.DELTA
            record = self._record(kind, self._map, moved, epoch, schema)
            try:
                self._end = await asyncio.to_thread(self.log.append, fd, record.line(), self._end)
            except BaseException:
                undo()  # the map holds what the log holds, no more
                raise
            await self._accept(record, self._map, len(moved))
            return record

    async def declare_rewind(self) -> Checkpoint:
        """After an operator restored an older database (and declared a new epoch): a base
        of the database as it is, which later checks start from."""
        async with self._lock, self._log_locked() as fd:
            lines, end = await asyncio.to_thread(self.log.read_from, 0)
            audit = audit_records(lines, self._key_for)
            # A damaged log is kept as evidence; the rewind starts a new chain of records
            # after it, linked to its last line.
            self._end = end
            self._last_hash = line_hash(lines[-1].raw) if lines else NO_PREVIOUS
            self._last = audit.last if audit.ok else None
            current = await self._reads.all_heads()
            after = HeadMap.of(sorted(current.items()))
            n = (lines[-1].record.n if lines and lines[-1].record else len(lines)) + 1
            record = self._record(
                RecordKind.REWIND,
                after,
                list(after.heads.items()),
                self._epoch(),
                await self._reads.schema_version(),
                n=n,
            )
            self._end = await asyncio.to_thread(self.log.append, fd, record.line(), self._end)
            self._problems.clear()
            await self._accept(record, after, 0)
            return record

    def _record(
        self,
        kind: RecordKind,
        after: HeadMap,
        moved: Iterable[tuple[str, Head]],
        epoch: str,
        schema: int,
        *,
        n: int | None = None,
    ) -> Checkpoint:
        heads = tuple(after.heads.items()) if kind is not RecordKind.DELTA else tuple(moved)
        unsigned = Checkpoint(
            n=n if n is not None else (self._last.n + 1 if self._last else 1),
            kind=kind,
            epoch=epoch,
            schema=schema,
            at_ms=self._clock_ms(),
            heads=heads,
            size=len(after.heads),
            root=after.root,
            prev=self._last_hash,
        )
        kid = self._ring.active_id
        key = checkpoint_key(self._ring, kid)
        assert key is not None
        return unsigned.signed(kid, key)

    async def wait_for(self, n: int) -> Checkpoint:
        """The checkpoint ``n`` or a later one, once taken (callers bound the wait)."""
        async with self._taken:
            await self._taken.wait_for(lambda: self._last is not None and self._last.n >= n)
            assert self._last is not None
            return self._last

    async def _accept(self, record: Checkpoint, after: HeadMap, moved: int) -> None:
        self._map, self._last = after, record
        self._last_hash = line_hash(record.line())
        self._since_base = 0 if record.kind is not RecordKind.DELTA else self._since_base + moved
        async with self._taken:
            self._taken.notify_all()

    @contextlib.asynccontextmanager
    async def _log_locked(self) -> AsyncIterator[int]:
        """The log's descriptor under its flock, taken in a thread: another process may hold
        it for a moment, and the event loop must not wait on it.

        A cancelled wait (a stop cancels the periodic checkpoint) does not stop the thread:
        when it gets the flock anyway, the descriptor is closed there, or the flock would
        stay held by nobody and the clean stop's checkpoint would wait on it forever."""
        acquiring = asyncio.get_running_loop().run_in_executor(None, self.log.acquire)
        try:
            fd = await asyncio.shield(acquiring)
        except asyncio.CancelledError:
            acquiring.add_done_callback(self._release_unused)
            raise
        try:
            yield fd
        finally:
            self.log.release(fd)

    def _release_unused(self, acquiring: asyncio.Future[int]) -> None:
        if not acquiring.cancelled() and acquiring.exception() is None:
            self.log.release(acquiring.result())

    # ------------------------------------------------------------------ reading

    async def follow(self) -> None:
        """Replay what other processes appended, without appending: a store that does not
        take the checkpoints (another node holds the lease) keeps its state current.  No
        flock is needed to read: an append in progress is a last line without its newline,
        which the reader leaves for next time."""
        async with self._lock:
            if self._problems:
                return
            await self._catch_up()
        async with self._taken:
            self._taken.notify_all()

    async def _catch_up(self) -> None:
        """Replay what other processes appended since we last read (under the flock)."""
        lines, end = await asyncio.to_thread(self.log.read_from, self._end)
        if not lines:
            return
        held = LogAudit(self._map, self._last)
        replayed = audit_records(lines, self._key_for, after=held, from_base=self._last is None)
        self._adopt(replayed, lines, end)

    def _adopt(self, audit: LogAudit, lines: list[RawLine], end: int) -> None:
        if not audit.ok:
            self._problems.extend(audit.problems)
            log.error("the checkpoint log cannot be trusted; no more checkpoints are taken")
            return
        if not lines:
            return
        self._map, self._last, self._end = audit.heads, audit.last, end
        self._last_hash = line_hash(lines[-1].raw)
        records = [line.record for line in lines if line.record is not None]
        bases = [i for i, r in enumerate(records) if r.kind is not RecordKind.DELTA]
        since = records[bases[-1] + 1 :] if bases else records
        self._since_base = (0 if bases else self._since_base) + sum(len(r.heads) for r in since)

    def _key_for(self, kid: str) -> bytes | None:
        return checkpoint_key(self._ring, kid)

    # ------------------------------------------------------------------ comparing

    async def departures(self) -> list[Departure]:
        """Where the database does not extend the latest checkpoint (empty: it does)."""
        if self._last is None:
            return []
        heads = dict(self._map.heads)
        at, last_seqs = await self._reads.facts(heads)
        return departures(self._last.n, heads, at, last_seqs)
