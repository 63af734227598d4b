"""The PostgreSQL backend of the store (issue 14): the whole contract, for several nodes.

:class:`~chatd.store.postgres.store.PostgresStore` is selected by
``CHATD_DATABASE_URL=postgresql://…``.  It is composed of one part per concern, like the
SQLite store, each saying in its docstring how it stays right while other nodes write at
the same time:

* foundation — :mod:`.db` (checked connections and pools: ``fsync`` and
  ``synchronous_commit`` keep "ack after COMMIT"; named transactions), :mod:`.failures`
  (asyncpg's errors as ours), :mod:`.migrations` and :mod:`.migration_1` (numbered
  migrations under an advisory lock, the append-only triggers in PL/pgSQL),
  :mod:`.privileges` (the owner role and the application role), :mod:`.context` (what the
  parts share: snapshots for reads, retried transactions for writes);
* the log — :mod:`.writer`, :mod:`.batch`, :mod:`.claims` (group commit under row locks on
  the heads), :mod:`.log`, :mod:`.heads`, :mod:`.inbox`;
* accounts — :mod:`.users`, :mod:`.tokens`, :mod:`.login_attempts`, :mod:`.live_sessions`,
  :mod:`.audit`;
* keys and files — :mod:`.keys`, :mod:`.attachments`, :mod:`.row_macs`;
* history — :mod:`.history`, :mod:`.chain_reads`, :mod:`.lease` (checkpoints by the holder
  of a lease; the leases of the other background jobs), :mod:`.verify`,
  :mod:`.consistency`, :mod:`.attachment_audit`, :mod:`.checkpoint_verify`,
  :mod:`.schema_check`;
* moving data — :mod:`.importer` (``chatd migrate-to``), :mod:`.backup` (``pg_dump`` and
  ``pg_restore`` for ``chatd backup``/``restore``).
"""
