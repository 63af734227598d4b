"""The store: the only code that touches the database (design §1), and never a file but it.

Nothing is imported here: the contract (``chatd.store.contract``), the planner
(``chatd.store.planner``) and the records (``chatd.core.records``) must load without the
SQLite driver, which only ``chatd.store.sqlite`` brings in.
"""
