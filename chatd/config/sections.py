"""The sections of the settings: one frozen dataclass per concern.

Each field is made with :func:`setting`, which names its ``CHATD_*`` variable explicitly: a
field may be renamed for the code's sake (``attachments.max_bytes``) while the variable an
operator writes stays the same (``CHATD_MAX_ATTACHMENT_BYTES``).  A new section is a new
subclass of :class:`Section` here, listed once as a field of
:class:`~chatd.config.Settings`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from chatd.config.parsers import (
    Network,
    parse_broker_url,
    parse_choice,
    parse_database_url,
    parse_int,
    parse_language,
    parse_list,
    parse_networks,
    parse_node_id,
    parse_path,
    parse_url,
)
from chatd.core.login_throttle import ThrottleLimits
from chatd.i18n import N_, Text

VARIABLE = "variable"
PARSE = "parse"
DOC = "doc"


def setting(variable: str, default: Any, parse: Callable[[str], Any], doc: str) -> Any:
    """A field read from ``variable``, by ``parse``; ``doc`` is an English message id."""
    return dataclasses.field(default=default, metadata={VARIABLE: variable, PARSE: parse, DOC: doc})


class Section:
    """A group of settings: a frozen dataclass whose fields are made with :func:`setting`."""

    # Declared so that the type checker knows every section is a dataclass.
    __dataclass_fields__: ClassVar[dict[str, dataclasses.Field[Any]]]

    def problems(self) -> list[Text]:
        """What is wrong across fields that are each valid alone."""
        return []


@dataclasses.dataclass(frozen=True)
class StoreSettings(Section):
    """Where the data lives: which database, its key file, and how the store keeps it.

    ``CHATD_DATABASE_URL`` chooses the backend: ``postgresql://…`` for PostgreSQL (several
    nodes), ``sqlite:///PATH`` for SQLite at PATH.  Without it, SQLite at ``CHATD_DATABASE``
    (default ``DATA_DIR/chatd.sqlite3``), as before.  Setting both is refused unless they
    name the same file: one of them would be silently ignored."""

    data_dir: Path = setting(
        "CHATD_DATA_DIR", Path("var"), parse_path, N_("Directory of the database and key file.")
    )
    database: Path | None = setting(
        "CHATD_DATABASE",
        None,
        parse_path,
        N_("SQLite database file (default: DATA_DIR/chatd.sqlite3)."),
    )
    database_url: str = setting(
        "CHATD_DATABASE_URL",
        "",
        parse_database_url,
        N_(
            "Database address: postgresql://USER:PASSWORD@HOST:PORT/NAME for PostgreSQL, or"
            " sqlite:///PATH, relative, or sqlite:////PATH, absolute (default: SQLite at"
            " CHATD_DATABASE)."
        ),
    )
    master_key_file: Path | None = setting(
        "CHATD_MASTER_KEY_FILE",
        None,
        parse_path,
        N_("Master key file, mode 0600 (default: DATA_DIR/master.keys)."),
    )
    visible_window: int = setting(
        "CHATD_VISIBLE_WINDOW",
        200,
        parse_int(1, 100_000),
        N_("Number of most recent messages a user can read."),
    )
    retention_years: int = setting(
        "CHATD_RETENTION_YEARS",
        10,
        parse_int(1, 100),
        N_("Years a conversation is kept after its last event."),
    )
    sqlite_synchronous: str = setting(
        "CHATD_SQLITE_SYNCHRONOUS",
        "FULL",
        parse_choice("FULL", "EXTRA", "NORMAL"),
        N_("SQLite synchronous mode (WAL)."),
    )
    max_batch: int = setting(
        "CHATD_MAX_BATCH",
        512,
        parse_int(1, 100_000),
        N_("Most writes committed together in one group commit."),
    )
    checkpoint_log: Path | None = setting(
        "CHATD_CHECKPOINT_LOG",
        None,
        parse_path,
        N_(
            "Signed checkpoint log, kept outside the database; put it on another disk or ship"
            " it off the host (default: the database file name plus .checkpoints)."
        ),
    )
    checkpoint_seconds: int = setting(
        "CHATD_CHECKPOINT_SECONDS",
        5,
        parse_int(1, 3600),
        N_("Seconds between two checkpoints while the history grows."),
    )

    def problems(self) -> list[Text]:
        url = self.database_url
        if not url or self.database is None:
            return []
        if url.startswith("sqlite:///") and Path(url[len("sqlite:///") :]) == self.database:
            return []
        return [
            Text(
                N_(
                    "CHATD_DATABASE and CHATD_DATABASE_URL name two different databases;"
                    " set only one."
                )
            )
        ]

    @property
    def backend(self) -> str:
        """``postgres`` or ``sqlite``."""
        return "postgres" if self.postgres_dsn else "sqlite"

    @property
    def postgres_dsn(self) -> str | None:
        url = self.database_url
        return url if url.startswith(("postgresql://", "postgres://")) else None

    @property
    def database_path(self) -> Path:
        """The SQLite file (with PostgreSQL: where it would be; nothing opens it)."""
        if self.database_url.startswith("sqlite:///"):
            return Path(self.database_url[len("sqlite:///") :]).expanduser()
        return self.database or self.data_dir / "chatd.sqlite3"

    @property
    def checkpoint_log_path(self) -> Path:
        if self.checkpoint_log is not None:
            return self.checkpoint_log
        if self.postgres_dsn:
            # Every node appends to it (one at a time): DATA_DIR is the shared storage.
            return self.data_dir / "chatd.checkpoints"
        database = self.database_path
        return database.with_name(database.name + ".checkpoints")

    @property
    def key_file_path(self) -> Path:
        return self.master_key_file or self.data_dir / "master.keys"

    @property
    def attachments_dir(self) -> Path:
        # Next to the database, so that every process opening it (the server, admin
        # commands) finds the same files; with PostgreSQL, in DATA_DIR, which every node
        # mounts from the shared storage.
        if self.postgres_dsn:
            return self.data_dir / "attachments"
        return self.database_path.parent / "attachments"


@dataclasses.dataclass(frozen=True)
class GatewaySettings(Section):
    """How the gateway listens, and what one connection may do."""

    host: str = setting("CHATD_HOST", "127.0.0.1", str, N_("Address the gateway listens on."))
    port: int = setting("CHATD_PORT", 8470, parse_int(0, 65535), N_("TCP port of the gateway."))
    tls_cert_file: Path | None = setting(
        "CHATD_TLS_CERT_FILE", None, parse_path, N_("TLS certificate (PEM).")
    )
    tls_key_file: Path | None = setting(
        "CHATD_TLS_KEY_FILE", None, parse_path, N_("TLS private key (PEM).")
    )
    allowed_origins: tuple[str, ...] = setting(
        "CHATD_ALLOWED_ORIGINS",
        (),
        parse_list,
        N_("Comma-separated Origin values browsers may connect from."),
    )
    max_frame_bytes: int = setting(
        "CHATD_MAX_FRAME_BYTES",
        65536,
        parse_int(1024, 16 * 1024 * 1024),
        N_("Largest frame a client may send (1009)."),
    )
    ws_rate: int = setting(
        "CHATD_WS_RATE", 20, parse_int(1, 1_000_000), N_("Requests/second per connection.")
    )
    ws_burst: int = setting(
        "CHATD_WS_BURST", 100, parse_int(1, 1_000_000), N_("Request burst per connection.")
    )
    ws_queue: int = setting(
        "CHATD_WS_QUEUE",
        1000,
        parse_int(4, 1_000_000),
        N_("Frames queued per connection before close 4005."),
    )
    ws_queue_bytes: int = setting(
        "CHATD_WS_QUEUE_BYTES",
        16 * 1024 * 1024,
        parse_int(2 * 1024 * 1024, 1024**3),
        N_(
            "Bytes queued per connection before close 4005; its requests wait above a"
            " quarter of it."
        ),
    )
    ws_memory_bytes: int = setting(
        "CHATD_WS_MEMORY_BYTES",
        512 * 1024 * 1024,
        parse_int(2 * 1024 * 1024, 64 * 1024**3),
        N_(
            "Bytes queued for all connections of this server; beyond it the connection"
            " holding the most is closed (4005)."
        ),
    )
    ws_stall_seconds: int = setting(
        "CHATD_WS_STALL_SECONDS",
        30,
        parse_int(1, 3600),
        N_(
            "Seconds the requests of a connection wait for it to read its replies before close"
            " 4005."
        ),
    )
    sessions_per_user: int = setting(
        "CHATD_SESSIONS_PER_USER",
        20,
        parse_int(1, 10_000),
        N_("Live connections one user may have, on all servers together (4008 beyond)."),
    )
    ws_idle_seconds: int = setting(
        "CHATD_WS_IDLE_SECONDS",
        300,
        parse_int(1, 86_400),
        N_("Seconds without a request before close 4006."),
    )
    ws_ping_seconds: int = setting(
        "CHATD_WS_PING_SECONDS",
        20,
        parse_int(0, 3600),
        N_("WebSocket keepalive ping interval (0: none)."),
    )
    auth_timeout_seconds: int = setting(
        "CHATD_AUTH_TIMEOUT_SECONDS",
        5,
        parse_int(1, 60),
        N_("Seconds a new connection has to authenticate (4000)."),
    )
    revocation_seconds: int = setting(
        "CHATD_REVOCATION_SECONDS",
        1,
        parse_int(1, 3600),
        N_(
            "Seconds between two checks that close the connections of logins revoked, expired"
            " or disabled elsewhere (the broker closes most of them at once)."
        ),
    )
    head_poll_seconds: int = setting(
        "CHATD_HEAD_POLL_SECONDS",
        1,
        parse_int(1, 3600),
        N_(
            "Seconds between two reads of the conversations that moved, which deliver to the"
            " connections of this node what the broker did not bring (it brings it at once)."
        ),
    )
    trusted_proxies: tuple[Network, ...] = setting(
        "CHATD_TRUSTED_PROXIES",
        (),
        parse_networks,
        N_(
            "Comma-separated IP addresses or networks of the reverse proxies whose"
            " X-Forwarded-For gives the address of the client (empty: none is trusted)."
        ),
    )

    max_connections: int = setting(
        "CHATD_MAX_CONNECTIONS",
        4096,
        parse_int(2, 1_000_000),
        N_(
            "Most open connections, HTTP and WebSocket; at the cap the one idle longest is"
            " closed, else the new one gets 503."
        ),
    )
    http_idle_seconds: int = setting(
        "CHATD_HTTP_IDLE_SECONDS",
        5,
        parse_int(1, 3600),
        N_("Seconds an HTTP connection may stay silent before its next request head."),
    )
    http_head_seconds: int = setting(
        "CHATD_HTTP_HEAD_SECONDS",
        10,
        parse_int(1, 3600),
        N_("Seconds a connection has to send a whole request head, however it trickles."),
    )
    http_body_stall_seconds: int = setting(
        "CHATD_HTTP_BODY_STALL_SECONDS",
        15,
        parse_int(1, 3600),
        N_("Seconds a request body may go without progress before the request is cut (408)."),
    )

    def problems(self) -> list[Text]:
        problems = []
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            problems.append(
                Text(N_("CHATD_TLS_CERT_FILE and CHATD_TLS_KEY_FILE must be set together."))
            )
        if self.ws_memory_bytes < self.ws_queue_bytes:
            problems.append(
                Text(N_("CHATD_WS_MEMORY_BYTES must be at least CHATD_WS_QUEUE_BYTES."))
            )
        return problems


@dataclasses.dataclass(frozen=True)
class AccountSettings(Section):
    """What users sign up to: their sessions, the terms of use, their language."""

    session_hours: int = setting(
        "CHATD_SESSION_HOURS", 8, parse_int(1, 24 * 30), N_("Lifetime of a login token.")
    )
    terms_version: str = setting(
        "CHATD_TERMS_VERSION", "2026-01", str, N_("Terms of use users must accept.")
    )
    terms_url: str = setting(
        "CHATD_TERMS_URL",
        "",
        parse_url,
        N_("Where users read the terms of use (https://…); shown with the version."),
    )
    default_language: str = setting(
        "CHATD_DEFAULT_LANGUAGE",
        "fr",
        parse_language,
        N_("Language of users who chose none and whose client asks for none (fr or en)."),
    )
    login_limit: int = setting(
        "CHATD_LOGIN_LIMIT",
        5,
        parse_int(1, 1_000),
        N_("Password attempts per login per window (in progress or failed)."),
    )
    login_address_limit: int = setting(
        "CHATD_LOGIN_ADDRESS_LIMIT",
        30,
        parse_int(1, 1_000_000),
        N_("Password attempts per client address per window (in progress or failed)."),
    )
    login_global_limit: int = setting(
        "CHATD_LOGIN_GLOBAL_LIMIT",
        300,
        parse_int(1, 10_000_000),
        N_("Password attempts on the whole service per window (in progress or failed)."),
    )
    login_window_seconds: int = setting(
        "CHATD_LOGIN_WINDOW_SECONDS",
        60,
        parse_int(1, 86_400),
        N_("Seconds a password attempt counts in the login limits."),
    )

    @property
    def login_limits(self) -> ThrottleLimits:
        return ThrottleLimits(
            per_login=self.login_limit,
            per_address=self.login_address_limit,
            overall=self.login_global_limit,
            window_ms=self.login_window_seconds * 1000,
        )


@dataclasses.dataclass(frozen=True)
class AttachmentSettings(Section):
    """What may be uploaded, how often, what decoding images may cost, and how long an unsent
    upload is kept."""

    max_bytes: int = setting(
        "CHATD_MAX_ATTACHMENT_BYTES",
        10 * 1024 * 1024,
        parse_int(1024, 1024**3),
        N_("Largest attachment upload, in bytes."),
    )
    max_image_pixels: int = setting(
        "CHATD_MAX_IMAGE_PIXELS",
        50_000_000,
        parse_int(1_000_000, 89_000_000),
        N_("Most pixels an uploaded image may have (larger ones are refused, not decoded)."),
    )
    image_decode_pixels: int = setting(
        "CHATD_IMAGE_DECODE_PIXELS",
        100_000_000,
        parse_int(1_000_000, 4_000_000_000),
        N_(
            "Pixels of images decoded at once, all uploads together (about 8 bytes of memory"
            " each); an image larger than this is refused."
        ),
    )
    image_workers: int = setting(
        "CHATD_IMAGE_WORKERS",
        4,
        parse_int(1, 256),
        N_("Worker processes decoding images at once (each decodes one image, then exits)."),
    )
    uploads_per_minute: int = setting(
        "CHATD_UPLOADS_PER_MINUTE",
        30,
        parse_int(1, 1_000_000),
        N_("Uploads one user may start per minute (then 429 rate_limited)."),
    )
    upload_bytes_per_minute: int = setting(
        "CHATD_UPLOAD_BYTES_PER_MINUTE",
        100 * 1024 * 1024,
        parse_int(1024, 1024**4),
        N_(
            "Bytes one user may upload per minute (then 429 rate_limited); at least"
            " CHATD_MAX_ATTACHMENT_BYTES."
        ),
    )
    ttl_seconds: int = setting(
        "CHATD_ATTACHMENT_TTL_SECONDS",
        86_400,
        parse_int(60, 30 * 86_400),
        N_("Seconds an upload waits for a message to send it before it is discarded."),
    )
    sweep_seconds: int = setting(
        "CHATD_ATTACHMENT_SWEEP_SECONDS",
        600,
        parse_int(0, 86_400),
        N_("Seconds between sweeps of expired uploads (0: never)."),
    )

    def problems(self) -> list[Text]:
        if self.upload_bytes_per_minute < self.max_bytes:
            return [
                Text(
                    N_(
                        "CHATD_UPLOAD_BYTES_PER_MINUTE must be at least CHATD_MAX_ATTACHMENT_BYTES"
                        " ({max_bytes}): a file of the largest size could never be sent."
                    ),
                    {"max_bytes": self.max_bytes},
                )
            ]
        return []


@dataclasses.dataclass(frozen=True)
class ClusterSettings(Section):
    """How this node hears the others: the broker between nodes, and its own name."""

    broker_url: str = setting(
        "CHATD_BROKER_URL",
        "",
        parse_broker_url,
        N_(
            "NATS server between the nodes, nats://host:port (empty: one node, publications"
            " stay in this process)."
        ),
    )
    node_id: str = setting(
        "CHATD_NODE_ID",
        "",
        parse_node_id,
        N_("Name of this node among the others (empty: a new random one at each start)."),
    )
    broker_ca_file: Path | None = setting(
        "CHATD_BROKER_CA_FILE",
        None,
        parse_path,
        N_(
            "Certificates (PEM) of the authorities that must have signed the certificate of a"
            " tls:// broker (default: those of the system)."
        ),
    )
    broker_cert_file: Path | None = setting(
        "CHATD_BROKER_CERT_FILE",
        None,
        parse_path,
        N_("Certificate (PEM) of this node, for a tls:// broker that asks for one."),
    )
    broker_key_file: Path | None = setting(
        "CHATD_BROKER_KEY_FILE",
        None,
        parse_path,
        N_("The private key (PEM) of CHATD_BROKER_CERT_FILE."),
    )

    def problems(self) -> list[Text]:
        found: list[Text] = []
        tls_files = {
            "CHATD_BROKER_CA_FILE": self.broker_ca_file,
            "CHATD_BROKER_CERT_FILE": self.broker_cert_file,
            "CHATD_BROKER_KEY_FILE": self.broker_key_file,
        }
        if not self.broker_url.startswith("tls://"):
            found += [
                Text(
                    N_("{variable} is only for a broker at a tls:// address (CHATD_BROKER_URL)."),
                    {"variable": variable},
                )
                for variable, path in tls_files.items()
                if path is not None
            ]
        if (self.broker_cert_file is None) != (self.broker_key_file is None):
            found.append(
                Text(N_("CHATD_BROKER_CERT_FILE and CHATD_BROKER_KEY_FILE go together: set both."))
            )
        return found
