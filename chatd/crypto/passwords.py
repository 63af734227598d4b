"""Password hashing with Argon2id at the OWASP-recommended minimum (19 MiB, t=2, p=1).

Hashes are PHC strings (``$argon2id$v=19$m=19456,t=2,p=1$…``), so the parameters travel with
the hash and can be raised later: :func:`needs_rehash` tells when a stored hash is weaker than
the current parameters.  Hashing costs ~tens of milliseconds of CPU: callers on the event loop
run it in a thread (``asyncio.to_thread``).
"""

from __future__ import annotations

import hmac
import os
import re

from cryptography.exceptions import InvalidKey
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

from chatd.core.password_policy import MAX_PASSWORD_BYTES

MEMORY_KIB = 19 * 1024
ITERATIONS = 2
LANES = 1
SALT_BYTES = 16
HASH_BYTES = 32
_PARAMS = re.compile(r"^\$argon2id\$v=19\$m=(\d+),t=(\d+),p=(\d+)\$")


def hash_password(password: str) -> str:
    kdf = Argon2id(
        salt=os.urandom(SALT_BYTES),
        length=HASH_BYTES,
        iterations=ITERATIONS,
        lanes=LANES,
        memory_cost=MEMORY_KIB,
    )
    return kdf.derive_phc_encoded(password.encode()[:MAX_PASSWORD_BYTES])


def verify_password(password: str, phc: str) -> bool:
    """True iff ``password`` matches; False (never an exception) for a malformed hash."""
    if not _PARAMS.match(phc):
        # Spend comparable time so that a malformed or absent hash is not distinguishable.
        hmac.compare_digest(hash_password(password), phc)
        return False
    try:
        Argon2id.verify_phc_encoded(password.encode()[:MAX_PASSWORD_BYTES], phc)
    except (InvalidKey, ValueError):
        return False
    return True


def needs_rehash(phc: str) -> bool:
    match = _PARAMS.match(phc)
    if not match:
        return True
    memory, iterations, lanes = (int(g) for g in match.groups())
    return memory < MEMORY_KIB or iterations < ITERATIONS or lanes < LANES
