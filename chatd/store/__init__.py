"""The store: the only code that touches the database (design §1)."""

from chatd.store.abstract import Store
from chatd.store.sqlite import SqliteStore

__all__ = ["SqliteStore", "Store"]
