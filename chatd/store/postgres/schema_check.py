"""placeholder"""

from __future__ import annotations

from chatd.core.records import VerifyProblem
from chatd.store.postgres.db import Connection


async def check_schema_txn(conn: Connection) -> list[VerifyProblem]:
    return []
