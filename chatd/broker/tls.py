"""The TLS context of a node's connection to a ``tls://`` broker.

NATS between nodes crosses the network of the deployment: what rides on it is chosen so
that nothing needs sealing (:mod:`chatd.broker.wire`), but a session end or a read marker
forged by someone on the path would still close sockets or move counters, so production
runs NATS over TLS, with the server's certificate checked against the authorities the
operator names (``CHATD_BROKER_CA_FILE``, else the system's) and, if the NATS server asks
for it, a certificate of the node's own (``CHATD_BROKER_CERT_FILE`` and
``CHATD_BROKER_KEY_FILE``).  TLS 1.2 at least, host names checked: Python's defaults for
a client, which this module does not loosen.

A file that cannot be read is a setting error, said at start with the variable's name and
the reason, never a broker that silently connects in clear.
"""

from __future__ import annotations

import ssl
from pathlib import Path

from chatd.core.errors import ConfigError
from chatd.i18n import N_

UNREADABLE = N_("{variable}: {path} cannot be used for TLS: {reason}")


def tls_context(
    ca_file: Path | None, cert_file: Path | None, key_file: Path | None
) -> ssl.SSLContext:
    """A client context that checks the broker's certificate and host name."""
    try:
        context = ssl.create_default_context(cafile=None if ca_file is None else str(ca_file))
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            UNREADABLE, variable="CHATD_BROKER_CA_FILE", path=str(ca_file), reason=_why(exc)
        ) from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert_file is not None and key_file is not None:
        try:
            context.load_cert_chain(str(cert_file), str(key_file))
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                UNREADABLE, variable="CHATD_BROKER_CERT_FILE", path=str(cert_file), reason=_why(exc)
            ) from None
    return context


def _why(exc: OSError | ssl.SSLError) -> str:
    """The reason, without the file's content (an OSError's strerror, an SSL error's name)."""
    if isinstance(exc, ssl.SSLError):
        return str(exc.reason or type(exc).__name__)
    return exc.strerror or type(exc).__name__
