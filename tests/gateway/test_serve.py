"""``chatd serve`` itself: TLS from settings, and a graceful stop that tells clients."""

from __future__ import annotations

import datetime
import ipaddress
import signal
import ssl
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from chatd.gateway.protocol import CloseCode
from tests.gateway.client import WsClient
from tests.gateway.conftest import LENIENT, PASSWORD, Admin, start_server


def self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


async def test_tls_serving_and_graceful_stop(tmp_path: Path, password_hash: str) -> None:
    cert, key = self_signed(tmp_path)
    server = start_server(
        tmp_path,
        {**LENIENT, "CHATD_TLS_CERT_FILE": str(cert), "CHATD_TLS_KEY_FILE": str(key)},
        scheme="https",
    )
    try:
        assert server.base_url.startswith("https://") and server.ws_url.startswith("wss://")
        context = ssl.create_default_context(cafile=str(cert))
        store = server.store()
        await store.open()
        try:
            admin = Admin(server, store, password_hash)
            account = await admin.user()
        finally:
            await store.close()
        async with httpx.AsyncClient(base_url=server.base_url, verify=context) as http:
            login = await http.post(
                "/v1/auth/login", json={"login": account.login, "password": PASSWORD}
            )
            assert login.status_code == 200
        with pytest.raises(httpx.TransportError):  # plain HTTP is not served
            httpx.get(server.base_url.replace("https://", "http://") + "/healthz")
        client = await WsClient.open(server.ws_url, login.json()["token"], ssl=context)
        await client.ok("ping")
        server.proc.send_signal(signal.SIGTERM)
        assert (await client.wait_closed())[0] == CloseCode.SERVICE_RESTART
        assert server.proc.wait(15) == 0
        assert "Traceback" not in server.log()
    finally:
        if server.proc.poll() is None:
            server.proc.kill()
