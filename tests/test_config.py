"""Configuration from CHATD_* variables."""

from __future__ import annotations

import dataclasses
import ipaddress
from pathlib import Path

import pytest

from chatd.config import Settings
from chatd.config.sections import (
    AccountSettings,
    AttachmentSettings,
    GatewaySettings,
    StoreSettings,
)
from chatd.core.errors import ConfigError

# Every variable as ``Settings.describe()`` listed them before the settings had sections: an
# operator's environment written then must keep working, so none may be renamed or dropped.
VARIABLES_BEFORE_SECTIONS = (
    "CHATD_DATA_DIR",
    "CHATD_DATABASE",
    "CHATD_MASTER_KEY_FILE",
    "CHATD_VISIBLE_WINDOW",
    "CHATD_RETENTION_YEARS",
    "CHATD_SQLITE_SYNCHRONOUS",
    "CHATD_MAX_BATCH",
    "CHATD_MAX_ATTACHMENT_BYTES",
    "CHATD_MAX_IMAGE_PIXELS",
    "CHATD_ATTACHMENT_TTL_SECONDS",
    "CHATD_ATTACHMENT_SWEEP_SECONDS",
    "CHATD_HOST",
    "CHATD_PORT",
    "CHATD_TLS_CERT_FILE",
    "CHATD_TLS_KEY_FILE",
    "CHATD_ALLOWED_ORIGINS",
    "CHATD_TERMS_VERSION",
    "CHATD_TERMS_URL",
    "CHATD_SESSION_HOURS",
    "CHATD_MAX_FRAME_BYTES",
    "CHATD_WS_RATE",
    "CHATD_WS_BURST",
    "CHATD_WS_QUEUE",
    "CHATD_WS_QUEUE_BYTES",  # issue 12: bytes, back-pressure, the node's total, the cap
    "CHATD_WS_MEMORY_BYTES",
    "CHATD_WS_STALL_SECONDS",
    "CHATD_SESSIONS_PER_USER",
    "CHATD_WS_IDLE_SECONDS",
    "CHATD_WS_PING_SECONDS",
    "CHATD_AUTH_TIMEOUT_SECONDS",
    "CHATD_DEFAULT_LANGUAGE",
    "CHATD_DEBUG",
)
# Added since, each with the issue that brought it.
VARIABLES_ADDED = (
    # issue 12, item 4: the server's edge
    "CHATD_MAX_CONNECTIONS",
    "CHATD_HTTP_IDLE_SECONDS",
    "CHATD_HTTP_HEAD_SECONDS",
    "CHATD_HTTP_BODY_STALL_SECONDS",
    # issue 12, item 7: decoding images under a budget, per-user upload limits
    "CHATD_IMAGE_DECODE_PIXELS",
    "CHATD_IMAGE_WORKERS",
    "CHATD_UPLOADS_PER_MINUTE",
    "CHATD_UPLOAD_BYTES_PER_MINUTE",
    # issue 12, item 1: the login throttle
    "CHATD_TRUSTED_PROXIES",
    "CHATD_LOGIN_LIMIT",
    "CHATD_LOGIN_ADDRESS_LIMIT",
    "CHATD_LOGIN_GLOBAL_LIMIT",
    "CHATD_LOGIN_WINDOW_SECONDS",
    # issue 13: signed checkpoints
    "CHATD_CHECKPOINT_LOG",
    "CHATD_CHECKPOINT_SECONDS",
    # issue 14: the broker between nodes
    "CHATD_BROKER_URL",
    "CHATD_NODE_ID",
    "CHATD_REVOCATION_SECONDS",
    # issue 14: the database of several nodes
    "CHATD_DATABASE_URL",
    "CHATD_HEAD_POLL_SECONDS",
    "CHATD_BROKER_CA_FILE",
    "CHATD_BROKER_CERT_FILE",
    "CHATD_BROKER_KEY_FILE",
)
EVERY_VARIABLE_NAME = VARIABLES_BEFORE_SECTIONS + VARIABLES_ADDED


def test_defaults_from_an_empty_environment() -> None:
    s = Settings.from_env({})
    assert s.store.data_dir == Path("var")
    assert s.store.database_path == Path("var") / "chatd.sqlite3"
    assert s.store.key_file_path == Path("var") / "master.keys"
    assert s.store.attachments_dir == Path("var") / "attachments"
    assert s.store.visible_window == 200
    assert s.store.retention_years == 10
    assert s.store.sqlite_synchronous == "FULL"
    assert s.gateway.port == 8470
    assert s.gateway.host == "127.0.0.1"
    assert s.gateway.allowed_origins == ()
    assert s.accounts.session_hours == 8
    assert s.debug is False
    assert s.gateway.tls_cert_file is None and s.gateway.tls_key_file is None


def test_other_variables_are_ignored() -> None:
    assert Settings.from_env({"HOME": "/root", "CHATDX": "1", "chatd_port": "1"}) == Settings()


def test_values_are_parsed() -> None:
    s = Settings.from_env(
        {
            "CHATD_DATA_DIR": "/srv/chatd",
            "CHATD_VISIBLE_WINDOW": " 50 ",
            "CHATD_SQLITE_SYNCHRONOUS": "normal",
            "CHATD_PORT": "0",
            "CHATD_ALLOWED_ORIGINS": "https://a.example, ,https://b.example,",
            "CHATD_DEBUG": "Yes",
            "CHATD_TLS_CERT_FILE": "/etc/chatd/cert.pem",
            "CHATD_TLS_KEY_FILE": "/etc/chatd/key.pem",
            "CHATD_MASTER_KEY_FILE": "/run/secrets/chatd.keys",
        }
    )
    assert s.store.data_dir == Path("/srv/chatd")
    assert s.store.database_path == Path("/srv/chatd/chatd.sqlite3")
    assert s.store.key_file_path == Path("/run/secrets/chatd.keys")
    assert s.store.visible_window == 50
    assert s.store.sqlite_synchronous == "NORMAL"
    assert s.gateway.port == 0
    assert s.gateway.allowed_origins == ("https://a.example", "https://b.example")
    assert s.debug is True
    assert s.gateway.tls_cert_file == Path("/etc/chatd/cert.pem")


@pytest.mark.parametrize("raw", ["0", "false", "No", "off"])
def test_false_booleans(raw: str) -> None:
    assert Settings.from_env({"CHATD_DEBUG": raw}).debug is False


def test_unknown_chatd_variable_is_refused() -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"CHATD_VISIBLE_WINDOWS": "100"})
    assert "CHATD_VISIBLE_WINDOWS" in caught.value.message


@pytest.mark.parametrize(
    ("variable", "raw"),
    [
        ("CHATD_VISIBLE_WINDOW", "abc"),
        ("CHATD_VISIBLE_WINDOW", "0"),
        ("CHATD_VISIBLE_WINDOW", "100001"),
        ("CHATD_PORT", "65536"),
        ("CHATD_PORT", "-1"),
        ("CHATD_RETENTION_YEARS", "1.5"),
        ("CHATD_SQLITE_SYNCHRONOUS", "OFF"),
        ("CHATD_DEBUG", "maybe"),
        ("CHATD_DATA_DIR", "  "),
        ("CHATD_MAX_BATCH", ""),
        ("CHATD_CHECKPOINT_SECONDS", "0"),
        ("CHATD_CHECKPOINT_LOG", " "),
    ],
)
def test_bad_value_names_the_variable(variable: str, raw: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({variable: raw})
    assert variable in caught.value.message
    assert caught.value.code == "config_error"


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"CHATD_PORT": "x", "CHATD_DEBUG": "x", "CHATD_NOPE": "1"})
    for variable in ("CHATD_PORT", "CHATD_DEBUG", "CHATD_NOPE"):
        assert variable in caught.value.message


def test_tls_files_go_together() -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"CHATD_TLS_CERT_FILE": "/c.pem"})
    assert "CHATD_TLS_KEY_FILE" in caught.value.message


def test_overrides_and_describe() -> None:
    s = Settings.from_env({"CHATD_PORT": "9000"}, visible_window=7)
    assert (s.gateway.port, s.store.visible_window) == (9000, 7)
    described = {variable: doc for variable, _, doc in Settings.describe()}
    assert set(described) == set(EVERY_VARIABLE_NAME)
    assert all(doc for doc in described.values())
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.gateway.port = 1  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.store = StoreSettings()  # type: ignore[misc]


def test_queue_memory_settings_are_checked_together() -> None:
    s = Settings.from_env({"CHATD_WS_QUEUE_BYTES": "4194304", "CHATD_SESSIONS_PER_USER": "3"})
    assert (s.gateway.ws_queue_bytes, s.gateway.sessions_per_user) == (4 * 1024 * 1024, 3)
    assert Settings().gateway.ws_memory_bytes >= Settings().gateway.ws_queue_bytes
    for bad in (
        {"CHATD_WS_QUEUE_BYTES": "1000"},  # under a history reply: every page would overflow
        {"CHATD_SESSIONS_PER_USER": "0"},
        {"CHATD_WS_STALL_SECONDS": "0"},
        {"CHATD_WS_QUEUE_BYTES": "8388608", "CHATD_WS_MEMORY_BYTES": "4194304"},
    ):
        with pytest.raises(ConfigError):
            Settings.from_env(bad)


def test_the_terminal_clients_variables_are_not_the_servers() -> None:
    """A terminal set up for chatd-cli (README: ``export CHATD_CLI_CONFIG_DIR=…``) runs every
    ``chatd`` command; a typo of a server setting is still refused."""
    client = {
        "CHATD_CLI_CONFIG_DIR": "/home/claire/.config/chatd-cli-claire",
        "CHATD_CLI_SERVER": "http://127.0.0.1:8470",
        "CHATD_SERVER": "http://127.0.0.1:8470",
        "CHATD_CLI_ANYTHING_NEW": "1",
    }
    assert Settings.from_env(client) == Settings()
    with pytest.raises(ConfigError, match="CHATD_SERVERS is not a chatd setting"):
        Settings.from_env({**client, "CHATD_SERVERS": "x"})


def test_settings_are_described_as_an_operator_writes_them() -> None:
    described = {name: default for name, default, _ in Settings.describe()}
    assert described["CHATD_DATA_DIR"] == "var"
    assert described["CHATD_SQLITE_SYNCHRONOUS"] == "FULL"
    assert described["CHATD_DATABASE"] == ""
    assert described["CHATD_ALLOWED_ORIGINS"] == ""
    assert described["CHATD_DEBUG"] == "false"
    assert described["CHATD_TERMS_URL"] == ""
    assert not any("'" in default or "Path(" in default for default in described.values())


@pytest.mark.parametrize("url", ["ftp://x", "terms.html", "javascript:alert(1)"])
def test_terms_url_must_be_a_web_address(url: str) -> None:
    with pytest.raises(ConfigError, match="CHATD_TERMS_URL"):
        Settings.from_env({"CHATD_TERMS_URL": url})


# variable, a value other than its default, and where the code finds it (section, field, value)
EVERY_VARIABLE = [
    ("CHATD_DATA_DIR", "/srv/chatd", ("store", "data_dir", Path("/srv/chatd"))),
    ("CHATD_DATABASE", "/srv/db.sqlite3", ("store", "database", Path("/srv/db.sqlite3"))),
    ("CHATD_MASTER_KEY_FILE", "/run/k", ("store", "master_key_file", Path("/run/k"))),
    ("CHATD_VISIBLE_WINDOW", "50", ("store", "visible_window", 50)),
    ("CHATD_RETENTION_YEARS", "20", ("store", "retention_years", 20)),
    ("CHATD_SQLITE_SYNCHRONOUS", "extra", ("store", "sqlite_synchronous", "EXTRA")),
    ("CHATD_MAX_BATCH", "64", ("store", "max_batch", 64)),
    ("CHATD_CHECKPOINT_LOG", "/mnt/worm/c", ("store", "checkpoint_log", Path("/mnt/worm/c"))),
    ("CHATD_CHECKPOINT_SECONDS", "30", ("store", "checkpoint_seconds", 30)),
    ("CHATD_MAX_ATTACHMENT_BYTES", "2048", ("attachments", "max_bytes", 2048)),
    ("CHATD_MAX_IMAGE_PIXELS", "2000000", ("attachments", "max_image_pixels", 2_000_000)),
    ("CHATD_ATTACHMENT_TTL_SECONDS", "120", ("attachments", "ttl_seconds", 120)),
    ("CHATD_ATTACHMENT_SWEEP_SECONDS", "0", ("attachments", "sweep_seconds", 0)),
    ("CHATD_HOST", "::1", ("gateway", "host", "::1")),
    ("CHATD_PORT", "9000", ("gateway", "port", 9000)),
    (
        "CHATD_ALLOWED_ORIGINS",
        "https://a.example",
        ("gateway", "allowed_origins", ("https://a.example",)),
    ),
    ("CHATD_MAX_FRAME_BYTES", "4096", ("gateway", "max_frame_bytes", 4096)),
    ("CHATD_WS_RATE", "7", ("gateway", "ws_rate", 7)),
    ("CHATD_WS_BURST", "8", ("gateway", "ws_burst", 8)),
    ("CHATD_WS_QUEUE", "9", ("gateway", "ws_queue", 9)),
    ("CHATD_WS_QUEUE_BYTES", "3145728", ("gateway", "ws_queue_bytes", 3 * 1024 * 1024)),
    ("CHATD_WS_MEMORY_BYTES", "2147483648", ("gateway", "ws_memory_bytes", 2 * 1024**3)),
    ("CHATD_WS_STALL_SECONDS", "13", ("gateway", "ws_stall_seconds", 13)),
    ("CHATD_SESSIONS_PER_USER", "14", ("gateway", "sessions_per_user", 14)),
    ("CHATD_WS_IDLE_SECONDS", "10", ("gateway", "ws_idle_seconds", 10)),
    ("CHATD_WS_PING_SECONDS", "0", ("gateway", "ws_ping_seconds", 0)),
    ("CHATD_AUTH_TIMEOUT_SECONDS", "11", ("gateway", "auth_timeout_seconds", 11)),
    ("CHATD_SESSION_HOURS", "12", ("accounts", "session_hours", 12)),
    ("CHATD_TERMS_VERSION", "2027-02", ("accounts", "terms_version", "2027-02")),
    ("CHATD_TERMS_URL", "https://t.example", ("accounts", "terms_url", "https://t.example")),
    ("CHATD_DEFAULT_LANGUAGE", "EN", ("accounts", "default_language", "en")),
    (
        "CHATD_TRUSTED_PROXIES",
        "10.0.0.7, 192.168.0.0/24, ::1",
        (
            "gateway",
            "trusted_proxies",
            tuple(map(ipaddress.ip_network, ("10.0.0.7/32", "192.168.0.0/24", "::1/128"))),
        ),
    ),
    ("CHATD_LOGIN_LIMIT", "3", ("accounts", "login_limit", 3)),
    ("CHATD_LOGIN_ADDRESS_LIMIT", "40", ("accounts", "login_address_limit", 40)),
    ("CHATD_LOGIN_GLOBAL_LIMIT", "900", ("accounts", "login_global_limit", 900)),
    ("CHATD_LOGIN_WINDOW_SECONDS", "120", ("accounts", "login_window_seconds", 120)),
    ("CHATD_MAX_CONNECTIONS", "100", ("gateway", "max_connections", 100)),
    ("CHATD_HTTP_IDLE_SECONDS", "7", ("gateway", "http_idle_seconds", 7)),
    ("CHATD_HTTP_HEAD_SECONDS", "12", ("gateway", "http_head_seconds", 12)),
    ("CHATD_HTTP_BODY_STALL_SECONDS", "20", ("gateway", "http_body_stall_seconds", 20)),
    ("CHATD_IMAGE_DECODE_PIXELS", "50000000", ("attachments", "image_decode_pixels", 50_000_000)),
    ("CHATD_IMAGE_WORKERS", "2", ("attachments", "image_workers", 2)),
    ("CHATD_UPLOADS_PER_MINUTE", "10", ("attachments", "uploads_per_minute", 10)),
    (
        "CHATD_UPLOAD_BYTES_PER_MINUTE",
        "209715200",
        ("attachments", "upload_bytes_per_minute", 200 * 1024 * 1024),
    ),
    ("CHATD_BROKER_URL", "nats://10.0.0.5:4222", ("cluster", "broker_url", "nats://10.0.0.5:4222")),
    ("CHATD_NODE_ID", "node-b_2", ("cluster", "node_id", "node-b_2")),
    ("CHATD_REVOCATION_SECONDS", "30", ("gateway", "revocation_seconds", 30)),
    ("CHATD_HEAD_POLL_SECONDS", "5", ("gateway", "head_poll_seconds", 5)),
    (
        "CHATD_DATABASE_URL",
        "postgresql://chatd@db.example:5432/chatd",
        ("store", "database_url", "postgresql://chatd@db.example:5432/chatd"),
    ),
]


@pytest.mark.parametrize(
    ("variable", "raw"),
    [
        ("CHATD_BROKER_URL", "http://nats:4222"),
        ("CHATD_BROKER_URL", "localhost:4222"),
        ("CHATD_NODE_ID", "node a"),
        ("CHATD_NODE_ID", "nœud"),
        ("CHATD_NODE_ID", "n" * 65),
        ("CHATD_REVOCATION_SECONDS", "0"),
    ],
)
def test_cluster_values_that_would_misroute_stop_the_start(variable: str, raw: str) -> None:
    with pytest.raises(ConfigError, match=variable):
        Settings.from_env({variable: raw})


def test_the_broker_tls_files_go_with_a_tls_address() -> None:
    cluster = Settings.from_env(
        {
            "CHATD_BROKER_URL": "tls://nats.example:4222",
            "CHATD_BROKER_CA_FILE": "/etc/chatd/nats-ca.pem",
            "CHATD_BROKER_CERT_FILE": "/etc/chatd/node.pem",
            "CHATD_BROKER_KEY_FILE": "/etc/chatd/node.key",
        }
    ).cluster
    assert (cluster.broker_ca_file, cluster.broker_cert_file, cluster.broker_key_file) == (
        Path("/etc/chatd/nats-ca.pem"),
        Path("/etc/chatd/node.pem"),
        Path("/etc/chatd/node.key"),
    )
    with pytest.raises(ConfigError, match="CHATD_BROKER_KEY_FILE"):
        Settings.from_env({"CHATD_BROKER_KEY_FILE": "/etc/chatd/node.key"})


def test_the_database_url_chooses_the_backend_and_agrees_with_chatd_database() -> None:
    pg = Settings.from_env(
        {"CHATD_DATABASE_URL": "postgresql://chatd@db:5432/chatd", "CHATD_DATA_DIR": "/srv"}
    ).store
    assert (pg.backend, pg.postgres_dsn) == ("postgres", "postgresql://chatd@db:5432/chatd")
    # Shared by every node: the checkpoint log and the attachments live in DATA_DIR.
    assert pg.checkpoint_log_path == Path("/srv/chatd.checkpoints")
    assert pg.attachments_dir == Path("/srv/attachments")
    lite = Settings.from_env({"CHATD_DATABASE_URL": "sqlite:////srv/x.db"}).store
    assert (lite.backend, lite.database_path) == ("sqlite", Path("/srv/x.db"))
    same = {"CHATD_DATABASE_URL": "sqlite:////srv/x.db", "CHATD_DATABASE": "/srv/x.db"}
    assert Settings.from_env(same).store.database_path == Path("/srv/x.db")
    assert Settings.from_env({}).store.backend == "sqlite"


@pytest.mark.parametrize(
    "env",
    [
        {"CHATD_DATABASE_URL": "mysql://db/chatd"},
        {"CHATD_DATABASE_URL": "sqlite:///"},
        {"CHATD_DATABASE_URL": "postgresql://db/chatd", "CHATD_DATABASE": "/srv/chatd.sqlite3"},
        {"CHATD_DATABASE_URL": "sqlite:////srv/a.db", "CHATD_DATABASE": "/srv/b.db"},
    ],
)
def test_a_database_named_twice_or_unknown_stops_the_start(env: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match="CHATD_DATABASE"):
        Settings.from_env(env)


def test_a_bad_database_url_is_refused_without_showing_its_password() -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"CHATD_DATABASE_URL": "mysql://chatd:s3cret@db/chatd"})
    assert "s3cret" not in caught.value.message
    assert "chatd:***@db" in caught.value.message


def test_trusted_proxies_that_are_not_addresses_stop_the_start() -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"CHATD_TRUSTED_PROXIES": "10.0.0.1, proxy.example"})
    assert "CHATD_TRUSTED_PROXIES" in caught.value.message
    assert "'proxy.example'" in caught.value.message


def test_login_limits_default_to_five_a_minute_per_login() -> None:
    limits = Settings.from_env({}).accounts.login_limits
    assert (limits.per_login, limits.window_ms) == (5, 60_000)
    assert limits.per_login < limits.per_address < limits.overall


@pytest.mark.parametrize(("variable", "raw", "where"), EVERY_VARIABLE)
def test_every_sections_variables_are_read(
    variable: str, raw: str, where: tuple[str, str, object]
) -> None:
    section, field, value = where
    s = Settings.from_env({variable: raw})
    assert getattr(getattr(s, section), field) == value
    assert getattr(s, section) != getattr(Settings(), section)
    sections = ("store", "gateway", "accounts", "attachments", "cluster")
    others = [name for name in sections if name != section]
    assert all(getattr(s, name) == getattr(Settings(), name) for name in others)


def test_the_table_above_covers_every_variable() -> None:
    """The TLS pairs and CHATD_DEBUG are read by the tests above (they go with others)."""
    tested = {variable for variable, _, _ in EVERY_VARIABLE}
    tested |= {"CHATD_TLS_CERT_FILE", "CHATD_TLS_KEY_FILE", "CHATD_DEBUG"}
    tested |= {"CHATD_BROKER_CA_FILE", "CHATD_BROKER_CERT_FILE", "CHATD_BROKER_KEY_FILE"}
    assert tested == set(EVERY_VARIABLE_NAME)


def test_sections_are_what_the_code_sees() -> None:
    s = Settings.from_env(
        {
            "CHATD_TLS_CERT_FILE": "/c.pem",
            "CHATD_TLS_KEY_FILE": "/k.pem",
            "CHATD_DATABASE": "/srv/db/chatd.sqlite3",
            "CHATD_MAX_ATTACHMENT_BYTES": "4096",
        }
    )
    assert s.sections() == [s.store, s.gateway, s.accounts, s.attachments, s.cluster]
    assert isinstance(s.store, StoreSettings) and isinstance(s.gateway, GatewaySettings)
    assert isinstance(s.accounts, AccountSettings)
    assert isinstance(s.attachments, AttachmentSettings)
    assert (s.gateway.tls_cert_file, s.gateway.tls_key_file) == (Path("/c.pem"), Path("/k.pem"))
    assert s.store.attachments_dir == Path("/srv/db/attachments")
    assert s.attachments == AttachmentSettings(max_bytes=4096)


def test_the_variables_are_the_same_as_before_sections() -> None:
    described = [variable for variable, _, _ in Settings.describe()]
    assert set(VARIABLES_BEFORE_SECTIONS) <= set(described)
    assert sorted(described) == sorted(EVERY_VARIABLE_NAME)
    assert len(set(described)) == len(described)


def test_settings_are_described_section_by_section() -> None:
    described = [variable for variable, _, _ in Settings.describe()]
    assert described[:4] == [
        "CHATD_DATA_DIR",
        "CHATD_DATABASE",
        "CHATD_DATABASE_URL",
        "CHATD_MASTER_KEY_FILE",
    ]
    assert described.index("CHATD_PORT") < described.index("CHATD_SESSION_HOURS")
    assert described.index("CHATD_TERMS_URL") < described.index("CHATD_MAX_ATTACHMENT_BYTES")
    assert described[-1] == "CHATD_DEBUG"


def test_an_unknown_variable_is_refused_next_to_a_bad_value_of_a_section() -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"CHATD_ATTACHMENT_BYTES": "1", "CHATD_WS_RATE": "0"})
    assert "CHATD_ATTACHMENT_BYTES is not a chatd setting" in caught.value.message
    assert "CHATD_WS_RATE" in caught.value.message


def test_an_override_keeps_the_rest_of_its_section_from_the_environment() -> None:
    s = Settings.from_env(
        {"CHATD_MAX_IMAGE_PIXELS": "2000000"}, max_attachment_bytes=2048, debug=True
    )
    assert s.attachments == AttachmentSettings(max_bytes=2048, max_image_pixels=2_000_000)
    assert s.debug is True
    with pytest.raises(TypeError, match="max_bytes"):
        Settings.from_env({}, max_bytes=1)


def test_image_and_upload_limits_have_defaults_and_are_checked() -> None:
    s = Settings.from_env({})
    assert s.attachments.image_decode_pixels == 100_000_000
    assert s.attachments.image_workers == 4
    assert s.attachments.uploads_per_minute == 30
    assert s.attachments.upload_bytes_per_minute == 100 * 1024 * 1024
    tuned = Settings.from_env(
        {"CHATD_IMAGE_DECODE_PIXELS": "60000000", "CHATD_UPLOADS_PER_MINUTE": "5"}
    )
    assert (tuned.attachments.image_decode_pixels, tuned.attachments.uploads_per_minute) == (
        60_000_000,
        5,
    )
    for variable, value in [
        ("CHATD_IMAGE_DECODE_PIXELS", "999"),
        ("CHATD_IMAGE_WORKERS", "0"),
        ("CHATD_UPLOADS_PER_MINUTE", "many"),
    ]:
        with pytest.raises(ConfigError) as refused:
            Settings.from_env({variable: value})
        assert variable in refused.value.message
    # A file of the largest size must fit in a minute's bytes, else it could never be sent.
    with pytest.raises(ConfigError) as refused:
        Settings.from_env(
            {"CHATD_MAX_ATTACHMENT_BYTES": "2000000", "CHATD_UPLOAD_BYTES_PER_MINUTE": "1000000"}
        )
    assert "CHATD_UPLOAD_BYTES_PER_MINUTE" in refused.value.message
