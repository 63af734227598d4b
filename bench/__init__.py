"""chatd's benchmarks and chaos harness: run as modules from the repository's root.

* ``python -m bench.store_bench`` — the store alone, beside an ``executemany`` ceiling;
* ``python -m bench.gateway_bench`` — the whole server, beside a bare Starlette ceiling
  (``python -m bench.ceiling_server``);
* ``python -m bench.chaos`` — kill -9, drops, churn: nothing lost, duplicated or leaked.

They reach chatd only through its public surfaces: the wiring and the services for setup
(:mod:`bench.accounts`), the store's export path for the ground truth, the WebSocket
protocol for everything measured.  Figures: docs/performance.md; chaos: docs/reliability.md.
"""
