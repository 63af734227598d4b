"""NATS over TLS between nodes (``tls://`` with ``CHATD_BROKER_CA_FILE``): a node trusts the
broker's certificate only if the named authority signed it, and then publications cross as
they do in clear; a broker whose certificate another authority signed is refused at start,
loudly, and never used in clear instead."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from chatd.broker.base import Committed, EndSessions, SessionEnd
from chatd.broker.nats import NatsBroker
from chatd.broker.tls import tls_context
from chatd.config import Settings
from chatd.core.errors import BrokerUnavailable, ConfigError
from chatd.wiring import make_broker
from tests.broker.test_nats import Heard
from tests.servers.certs import make_certificates
from tests.servers.nats import NatsServer


async def test_publications_cross_between_nodes_over_tls(
    tmp_path: Path, nats_factory: Callable[..., NatsServer]
) -> None:
    certificates = make_certificates(tmp_path / "tls")
    nats = nats_factory(tls=certificates)
    assert nats.url.startswith("tls://")
    settings = Settings.from_env(
        {"CHATD_BROKER_URL": nats.url, "CHATD_BROKER_CA_FILE": str(certificates.ca)}
    )
    brokers = [make_broker(settings, node=f"noeud-{i}") for i in range(2)]
    assert all(isinstance(broker, NatsBroker) for broker in brokers)
    for broker in brokers:
        await broker.start()
    try:
        heard = Heard()
        brokers[1].subscribe(heard)
        brokers[0].publish(Committed.pointer(7, 1, 3))
        brokers[0].publish(EndSessions(SessionEnd.LOGGED_OUT, (b"\x02" * 32,)))
        assert await heard.next() == Committed.pointer(7, 1, 3)
        assert await heard.next() == EndSessions(SessionEnd.LOGGED_OUT, (b"\x02" * 32,))
        assert all(broker.health() == "ok" for broker in brokers)
    finally:
        for broker in brokers:
            await broker.stop()


async def test_a_broker_certified_by_another_authority_is_refused(
    tmp_path: Path, nats_factory: Callable[..., NatsServer]
) -> None:
    nats = nats_factory(tls=make_certificates(tmp_path / "real"))
    stranger = make_certificates(tmp_path / "other", authority="another CA")
    broker = NatsBroker(
        nats.url, "noeud-a", connect_seconds=1.0, tls=tls_context(stranger.ca, None, None)
    )
    with pytest.raises(BrokerUnavailable):
        await broker.start()
    assert broker.health() == "down"


async def test_a_plain_address_to_a_tls_broker_is_not_served_in_clear(
    tmp_path: Path, nats_factory: Callable[..., NatsServer]
) -> None:
    """A node told ``nats://`` by mistake while the broker demands TLS does not start."""
    nats = nats_factory(tls=make_certificates(tmp_path / "tls"))
    plain = nats.url.replace("tls://", "nats://")
    broker = NatsBroker(plain, "noeud-a", connect_seconds=1.0)
    with pytest.raises(BrokerUnavailable):
        await broker.start()


def test_tls_settings_are_checked_before_anything_connects(tmp_path: Path) -> None:
    ca = make_certificates(tmp_path / "tls").ca
    with pytest.raises(ConfigError, match="only for a broker at a tls:// address"):
        Settings.from_env({"CHATD_BROKER_URL": "nats://n:4222", "CHATD_BROKER_CA_FILE": str(ca)})
    with pytest.raises(ConfigError, match="go together"):
        Settings.from_env({"CHATD_BROKER_URL": "tls://n:4222", "CHATD_BROKER_CERT_FILE": str(ca)})
    missing = Settings.from_env(
        {"CHATD_BROKER_URL": "tls://n:4222", "CHATD_BROKER_CA_FILE": str(tmp_path / "none.pem")}
    )
    with pytest.raises(ConfigError, match="CHATD_BROKER_CA_FILE") as refused:
        make_broker(missing)
    assert "none.pem" in str(refused.value)
