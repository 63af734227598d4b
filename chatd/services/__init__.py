"""Use cases: the one door through which a change is applied, then published.

The gateway, the admin command and (later) the mail bridge call these; they call the store
and the broker, never a transport.  :class:`Services` is the set one process wires once
(:mod:`chatd.wiring`).
"""
