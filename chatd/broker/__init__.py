"""Committed results between nodes: the :class:`~chatd.broker.base.Broker` seam.

Services publish what they committed (events, per-user state, session ends); every node's
gateway subscribes and delivers to its own sockets.  :mod:`.memory` is the one-node broker;
a second node needs only a second implementation (NATS, the cluster issue).
"""
