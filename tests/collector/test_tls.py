"""TLS served by the collector itself (--certfile/--keyfile): HTTPS, WSS and gRPC over TLS with a
certificate made for the test. (Behind a TLS-terminating proxy, the collector serves plain HTTP and takes
the client address from X-Forwarded-For of trusted proxies: test_http.py.)"""

from __future__ import annotations

import datetime
import ipaddress
import json
import ssl
from pathlib import Path

import grpc
import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from websockets.sync.client import connect

from jobs.common.settings import KafkaSettings
from tests.collector.builders import T0, click
from tests.collector.running import WRITE_KEY, running_collector
from tests.support.streams import unique_topic
from uxstream.collector.grpc_server import collector_stub
from uxstream.collector.proto import collector_pb2 as pb

pytestmark = pytest.mark.services


def self_signed(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    certfile, keyfile = folder / "cert.pem", folder / "key.pem"
    certfile.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    keyfile.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return certfile, keyfile


def test_https_wss_and_grpc_over_tls_with_certfile_and_keyfile(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    certfile, keyfile = self_signed(tmp_path)
    args = ("--certfile", str(certfile), "--keyfile", str(keyfile))
    with running_collector(
        kafka_settings, tmp_path, unique_topic("test.collector.tls"), args=args
    ) as collector:
        assert collector.url.startswith("https://")
        response = httpx.post(
            f"{collector.url}/v1/batch", json=[click("tls", event_id="tls-1")],
            headers={"Authorization": f"Bearer {WRITE_KEY}"},
            verify=ssl.create_default_context(cafile=str(certfile)),
        )  # fmt: skip
        assert (response.status_code, response.json()["results"]) == (
            200,
            [{"status": "accepted", "event_id": "tls-1"}],
        )
        with pytest.raises(httpx.TransportError):
            httpx.get(f"http://127.0.0.1:{collector.port}/healthz", timeout=5)  # no plain HTTP on the port
        context = ssl.create_default_context(cafile=str(certfile))
        with connect(f"wss://127.0.0.1:{collector.port}/v1/stream?write_key={WRITE_KEY}", ssl=context) as ws:
            assert json.loads(ws.recv()) == {"type": "hello", "credits": 8}
        credentials = grpc.ssl_channel_credentials(root_certificates=certfile.read_bytes())
        channel = grpc.secure_channel(
            collector.grpc_target, credentials, options=[("grpc.ssl_target_name_override", "localhost")]
        )
        ack = collector_stub(channel).SendBatch(
            pb.Batch(batch_id="t", events=[pb.Event(event_type="click", event_name="click",
                                                     anonymous_id="tls", ts=T0, event_id="tls-2")]),
            metadata=(("authorization", f"Bearer {WRITE_KEY}"),), timeout=30,
        )  # fmt: skip
        assert (ack.status, ack.accepted, ack.results[0].event_id) == (200, 1, "tls-2")
        with pytest.raises(grpc.RpcError) as plain:
            collector_stub(grpc.insecure_channel(collector.grpc_target)).SendBatch(pb.Batch(), timeout=5)
        assert plain.value.code() == grpc.StatusCode.UNAVAILABLE
