"""The chaos and load harness of chatd: prove that no acknowledged message is ever lost,
duplicated or leaked, end to end, through the real WebSocket protocol (Jepsen style).

* :mod:`.history` — what every simulated client did and was told (the *history*);
* :mod:`.checker` — a pure function of the history and the final log: lost, duplicated,
  leaked, gaps, order…;
* :mod:`.truth` — the final log, read back through the store's export path;
* :mod:`.server` — a ``chatd serve`` subprocess that can be killed (``SIGKILL``) and
  restarted on the same data directory and port, its RSS sampled;
* :mod:`.client` — a simulated client: real WebSocket, ``client_msg_id`` retries,
  ``sync`` resume, optionally a slow consumer;
* :mod:`.cluster` — N ``chatd serve`` nodes on a real PostgreSQL and NATS (``tests/servers/``),
  with a node's kill -9 and the restarts of NATS and PostgreSQL;
* :mod:`.runner` — the load generator, the nemesis (faults), the final read;
* :mod:`.report` — a run's settings and its printed table;
* :mod:`.storm` — the resume-storm measurement.

``python -m bench.chaos`` is the command line; ``tests/chaos/`` runs a short scenario in CI.
"""
