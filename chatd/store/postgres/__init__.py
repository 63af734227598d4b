"""The PostgreSQL backend of the store (issue 14): its foundation, not yet the contract.

* :mod:`.db` — checked connections and pools (``fsync`` and ``synchronous_commit`` keep
  "ack after COMMIT"), named transactions, the schema version;
* :mod:`.failures` — asyncpg's errors as ours (unavailable, damaged, or the caller's);
* :mod:`.migrations` — numbered migrations under an advisory lock; :mod:`.migration_1`
  — the whole schema with its append-only triggers in PL/pgSQL;
* :mod:`.privileges` — the owner role and the application role, and what the latter may do.

The store itself (the :class:`~chatd.store.contract.Store` protocol on this schema) comes
next; ``chatd serve`` does not select this backend yet.
"""
