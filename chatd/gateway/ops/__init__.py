"""The operations of ``/v1/ws``, declared once each, by capability.

A new capability (the directory's search, inbox boxes, patient threads, resource teams…)
adds one module here with its ``REQUESTS`` and one line below.
"""

from __future__ import annotations

from chatd.gateway.ops import conversations, directory, inbox, session, sessions
from chatd.gateway.ops.base import Request

CAPABILITIES = (session, conversations, inbox, directory, sessions)

REQUESTS: dict[str, type[Request]] = {
    request.op: request for capability in CAPABILITIES for request in capability.REQUESTS
}
assert len(REQUESTS) == sum(len(c.REQUESTS) for c in CAPABILITIES), "an op declared twice"
