"""The store: the only code that touches the database (design §1).

Nothing is imported here: the contract (``chatd.store.abstract``) and the records
(``chatd.core.records``) must load without the SQLite driver, which only
``chatd.store.sqlite`` brings in.
"""
