"""``chatd-cli``: the terminal client of chatd, for people and for scripts.

It speaks only the protocol of ``docs/protocol.md``.  Layout (the ``websockets`` habit of
keeping protocol logic free of I/O):

- :mod:`~clients.cli.protocol` — frames in and out, as plain code;
- :mod:`~clients.cli.state` — what the client holds: seqs per conversation, conversation logs;
- :mod:`~clients.cli.outbox` — pending changes, persisted until the server acknowledges them;
- :mod:`~clients.cli.config` — where things live on disk, the token cache;
- :mod:`~clients.cli.auth` — HTTP login, logout and terms;
- :mod:`~clients.cli.connection` — the WebSocket, with reconnect, backoff and resume;
- :mod:`~clients.cli.delivery` — sending the outbox, in order, until answered;
- :mod:`~clients.cli.directory` — who is who (ids, names, login look-ups);
- :mod:`~clients.cli.render` — human and JSON output;
- :mod:`~clients.cli.commands` — the scriptable subcommands;
- :mod:`~clients.cli.watch` — ``watch``: live events until interrupted;
- :mod:`~clients.cli.chat` — the interactive view;
- :mod:`~clients.cli.main` — argument parsing and exit codes;
- :mod:`~clients.cli.i18n` — the language it speaks (French first, English on request); argparse's
  own words are :mod:`chatd.argparse_words`, shared with the admin command and extracted into
  both catalogues (``tools/catalogues.py``).
"""
