"""How many uploads, and how many bytes, one user may send a minute: the rule, no clock, no I/O.

Each user has two token buckets, one counting uploads and one counting bytes.  A bucket holds
at most its per-minute amount and refills continuously at that amount a minute, so a user
may send a whole minute's worth at once, then goes at the steady rate.  Over any span of
``T`` seconds a user is thus admitted at most ``amount × (1 + T / 60)`` of each.

An upload is counted **when it starts** (:meth:`UploadQuota.admit`), not when it ends: a
burst of parallel uploads cannot all pass a check that is made before any of them is counted
(the login throttle's fault in issue 12).  Its size is not known yet, so it reserves what it
declares (``Content-Length``, else the largest upload allowed); when the body has been
read, :meth:`UploadQuota.settle` gives back what it did not use.  Bytes a refused file made
the server receive are counted like any others.

Users whose buckets are full again are forgotten (a full bucket is what a new user gets), so
the table holds only users who uploaded in about the last minute.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from chatd.core.errors import RateLimitedError
from chatd.i18n import N_

MINUTE = 60.0
FIRST_PRUNE = 1024  # users in the table before the first sweep of full buckets


@dataclass(slots=True)
class Bucket:
    """``capacity`` tokens at most, ``capacity`` more every minute; may owe tokens (< 0)."""

    capacity: float
    tokens: float
    updated: float

    def refill(self, now: float) -> None:
        elapsed = max(0.0, now - self.updated)
        self.tokens = min(self.capacity, self.tokens + elapsed * self.capacity / MINUTE)
        self.updated = max(self.updated, now)

    def wait_for(self, amount: float) -> float:
        """Seconds until ``amount`` tokens are there (0 if they are)."""
        missing = amount - self.tokens
        return 0.0 if missing <= 0 else missing * MINUTE / self.capacity

    @property
    def full(self) -> bool:
        return self.tokens >= self.capacity


@dataclass(frozen=True, slots=True)
class Reservation:
    """One admitted upload: the bytes it reserved, given back by :meth:`UploadQuota.settle`."""

    user_id: int
    reserved: int


class UploadQuota:
    def __init__(self, uploads_per_minute: int, bytes_per_minute: int, max_upload_bytes: int):
        if uploads_per_minute < 1 or bytes_per_minute < max_upload_bytes or max_upload_bytes < 1:
            raise ValueError("an upload of the largest size must be admissible")
        self.uploads_per_minute = uploads_per_minute
        self.bytes_per_minute = bytes_per_minute
        self.max_upload_bytes = max_upload_bytes
        self._users: dict[int, tuple[Bucket, Bucket]] = {}
        self._prune_at = FIRST_PRUNE

    def admit(self, user_id: int, now: float, declared_bytes: int | None = None) -> Reservation:
        """Count one upload starting at ``now`` (seconds, any monotonic origin) and reserve
        its bytes; RateLimitedError (``rate_limited``) if either bucket is short."""
        reserved = self.max_upload_bytes
        if declared_bytes is not None:
            reserved = max(0, min(declared_bytes, self.max_upload_bytes))
        uploads, volume = self._buckets(user_id, now)
        wait = max(uploads.wait_for(1), volume.wait_for(reserved))
        if wait > 0:
            raise RateLimitedError(
                N_(
                    "You have sent too many files in the last minute; wait {seconds} seconds"
                    " before sending another one."
                ),
                seconds=max(1, math.ceil(wait)),
            )
        uploads.tokens -= 1
        volume.tokens -= reserved
        return Reservation(user_id, reserved)

    def settle(self, reservation: Reservation, received_bytes: int, now: float) -> None:
        """The upload's body is read: ``received_bytes`` is what it really cost."""
        buckets = self._users.get(reservation.user_id)
        if buckets is None:  # forgotten: only possible if it was full again
            buckets = self._buckets(reservation.user_id, now)
        volume = buckets[1]
        volume.refill(now)
        volume.tokens = min(volume.capacity, volume.tokens + reservation.reserved - received_bytes)

    def remaining(self, user_id: int, now: float) -> tuple[float, float]:
        """Uploads and bytes ``user_id`` may still send at ``now`` (for tests and logs)."""
        uploads, volume = self._buckets(user_id, now)
        return uploads.tokens, volume.tokens

    def __len__(self) -> int:
        return len(self._users)

    def _buckets(self, user_id: int, now: float) -> tuple[Bucket, Bucket]:
        buckets = self._users.get(user_id)
        if buckets is None:
            if len(self._users) >= self._prune_at:
                self._prune(now)
            buckets = (
                Bucket(self.uploads_per_minute, self.uploads_per_minute, now),
                Bucket(self.bytes_per_minute, self.bytes_per_minute, now),
            )
            self._users[user_id] = buckets
        for bucket in buckets:
            bucket.refill(now)
        return buckets

    def _prune(self, now: float) -> None:
        for user_id, buckets in list(self._users.items()):
            for bucket in buckets:
                bucket.refill(now)
            if all(bucket.full for bucket in buckets):
                del self._users[user_id]
        # Sweep again when the table has doubled: amortised O(1) per upload.
        self._prune_at = max(FIRST_PRUNE, 2 * len(self._users))
