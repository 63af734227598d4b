"""The SQLite backend of the store: one module per concern, composed by :class:`SqliteStore`.

* :mod:`.db` — connections, named transactions, migrations (:mod:`.migrations`), the epoch;
* :mod:`.context` — what the parts share: connection pool, the writer, data keys, clock;
* :mod:`.writer` — the single group-commit writer; :mod:`.batch` — the SQL of a plan;
  :mod:`.claims` — the SQL of attachment claims;
* :mod:`.log` — visibility (:data:`~.log.VISIBLE`), windows, pages, heads, audiences, export;
* :mod:`.users`, :mod:`.tokens` — accounts and login tokens;
* :mod:`.inbox` — read markers and the conversation list;
* :mod:`.keys` — data keys, rotation, retention; :mod:`.verify` — the row audit;
* :mod:`.attachments` — attachment rows (never files);
* :mod:`.lock` — the server lock that makes ``chatd serve`` the single appender.
"""

from chatd.store.sqlite.store import SqliteStore

__all__ = ["SqliteStore"]
