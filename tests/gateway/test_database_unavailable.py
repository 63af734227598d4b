"""A database that does not answer (PostgreSQL restarting or failing over) is an outage, not
a server bug: a request is answered ``unavailable`` — retry the same request, as
docs/deployment.md promises — and a push or ``sync`` it broke closes the connection 1001
(reconnect and ``sync``), with a warning and no "internal error" traceback in the log.

Found by the cluster chaos run (``tests/chaos/test_chaos_cluster.py``): every PostgreSQL
restart used to answer ``internal_error`` and log a traceback per request in flight.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from chatd.core.errors import DatabaseUnavailable
from chatd.gateway.protocol import CloseCode
from tests.gateway.client import WsClient, cmid
from tests.gateway.inprocess import serving


async def _no_database(*args: Any, **kwargs: Any) -> Any:
    raise DatabaseUnavailable()


def _internal_errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "internal error" in r.getMessage()]


async def test_a_request_during_an_outage_is_answered_unavailable_then_succeeds_on_retry(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.WARNING, logger="chatd.gateway")
    async with serving(tmp_path) as server:
        (_, anne_token), (bruno, _) = [await server.user(n) for n in ("Anne", "Bruno")]
        anne = await WsClient.open(server.ws_url, anne_token)
        try:
            await anne.sync()
            conv = await anne.create([bruno])
            messaging = server.process.services.messaging
            request = {"conv": conv, "text": "pendant la panne", "client_msg_id": cmid()}
            with monkeypatch.context() as patch:
                patch.setattr(messaging, "apply", _no_database)
                assert await anne.error("send", **request) == "unavailable"
            assert await anne.ok("send", **request)  # the same request, once it is back
            assert _internal_errors(caplog) == []
            assert any("database is unavailable" in r.getMessage() for r in caplog.records)
        finally:
            await anne.close()


async def test_a_sync_broken_by_an_outage_closes_1001_and_the_client_resumes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.WARNING, logger="chatd.gateway")
    async with serving(tmp_path) as server:
        _, token = await server.user("Anne")
        first = await WsClient.open(server.ws_url, token)
        with monkeypatch.context() as patch:
            patch.setattr(server.gateway.reading, "heads", _no_database)
            with pytest.raises(ConnectionError):  # the socket closes before any reply
                await first.request("sync", convs=[])
            code, _ = await first.wait_closed()
        assert code == CloseCode.GOING_AWAY
        assert _internal_errors(caplog) == []
        again = await WsClient.open(server.ws_url, token)
        try:
            await again.sync()
        finally:
            await again.close()
