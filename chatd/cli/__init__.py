"""``chatd`` admin command line: init, serve, verify, keys, retention, store, users, audit.

Every change an operator makes (accounts, keys, retention, the epoch) is recorded in the
administrators' audit log under their OS account (:func:`~chatd.services.maintenance.os_operator`),
through the services; ``chatd audit`` shows it.

Each sub-command is a small function over :class:`~chatd.config.Settings`; errors become one
line on stderr and a distinct exit code, never a traceback:

====  =====================================================
0     success
1     ``verify`` found a problem / dry-run found work to do
2     bad usage or invalid configuration
3     key file problem
4     database problem (migration, integrity, unavailable)
5     a running server holds the database (``keys rotate``/``retire``, ``store new-epoch``,
      a second ``serve``)
6     the database file is damaged (``database damaged: …``): restore a backup
====  =====================================================

Every command that opens the store closes what it opened when the open fails, so a damaged
database ends the command with its one line and code 6, never a traceback nor a hang.

The modules: :mod:`.parser` (the arguments and :func:`main`), :mod:`.store_commands` (init,
serve, verify, keys, retention, the epoch, settings), :mod:`.user_commands`,
:mod:`.audit_command`, and :mod:`.common` (exit codes, the voice, the output).
"""

from chatd.cli.parser import main

__all__ = ["main"]
