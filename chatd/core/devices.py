"""What a login's device is called: the family of its client, from a fixed vocabulary.

A device label typed by a person would be content (``"Dr Martin's phone, Salle 3"``), to be
sealed and checked; the ``User-Agent`` header, kept whole, is a fingerprint.  Neither is
needed to recognise one's own sessions: the family of the client (``chatd-cli``,
``Firefox``…) with the session's times is enough.  So a login keeps only a word of
:data:`FAMILIES`, picked here from its ``User-Agent``, and nothing else of it: no version,
no system, nothing the client wrote in free text.  Being a word of a fixed list, it is kept
in clear (docs/architecture.md, tables).
"""

from __future__ import annotations

# (marker in the User-Agent, family), tried in order: Edge and Opera say "Chrome" too,
# Chrome says "Safari", so the more specific come first.
_MARKERS: tuple[tuple[str, str], ...] = (
    ("chatd-cli", "chatd-cli"),
    ("edg/", "Edge"),
    ("opr/", "Opera"),
    ("firefox/", "Firefox"),
    ("chrome/", "Chrome"),
    ("chromium/", "Chrome"),
    ("safari/", "Safari"),
    ("curl/", "curl"),
    ("python-", "Python"),
    ("python/", "Python"),
)
OTHER = "other"
FAMILIES = frozenset({family for _, family in _MARKERS} | {OTHER})
MAX_USER_AGENT_CHARS = 1024  # longer headers are not searched: "other"


def device_family(user_agent: str | None) -> str | None:
    """The family of the client that sent ``user_agent`` (None: no header)."""
    if user_agent is None:
        return None
    if len(user_agent) > MAX_USER_AGENT_CHARS:
        return OTHER
    lowered = user_agent.lower()
    for marker, family in _MARKERS:
        if marker in lowered:
            return family
    return OTHER
