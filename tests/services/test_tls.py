"""mTLS between the services: a CA, certificates made with openssl at test time."""

from __future__ import annotations

import shutil
import socket
import subprocess
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.conftest import chunks
from tests.services.conftest import mesh, running, settings
from voxmesh import tls
from voxmesh.client import Client
from voxmesh.services.vad.service import VadService
from voxmesh.settings import VadSettings

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is needed to make test certificates")


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("pki")

    def ssl(*args):
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)

    ssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "2",
        "-subj",
        "/CN=voxmesh test CA",
    )
    (d / "san.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    ssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "tls.key", "-out", "tls.csr", "-subj", "/CN=localhost")
    ssl(
        "x509",
        "-req",
        "-in",
        "tls.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "tls.crt",
        "-days",
        "2",
        "-extfile",
        "san.ext",
    )
    return d


def files(pki: Path) -> dict:
    return {
        "tls_cert_file": str(pki / "tls.crt"),
        "tls_key_file": str(pki / "tls.key"),
        "tls_ca_file": str(pki / "ca.crt"),
    }


async def test_mtls_requires_a_client_certificate_and_health_has_a_plaintext_port(pki):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        health_port = sock.getsockname()[1]
    config = settings(VadSettings, health_port=health_port, **files(pki))
    async with running(VadService(config), config) as address:
        target = address.replace("127.0.0.1", "localhost")
        good = tls.channel_credentials(str(pki / "ca.crt"), str(pki / "tls.crt"), str(pki / "tls.key"))
        async with grpc.aio.secure_channel(target, good) as channel:
            reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        no_client_cert = tls.channel_credentials(str(pki / "ca.crt"))
        async with grpc.aio.secure_channel(target, no_client_cert) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
            assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        async with grpc.aio.insecure_channel(target) as channel:
            with pytest.raises(grpc.aio.AioRpcError):
                await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{health_port}") as channel:
            reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING, "probes get health in plaintext"


async def test_whole_mesh_over_mtls(pki, sample_pcm):
    tls_files = files(pki)
    async with mesh(gateway={**tls_files, "downstream_tls": True}, vad=tls_files, asr=tls_files, llm=tls_files) as (
        address,
        _,
    ):
        credentials = tls.channel_credentials(str(pki / "ca.crt"), str(pki / "tls.crt"), str(pki / "tls.key"))
        async with Client(address.replace("127.0.0.1", "localhost"), credentials=credentials) as client:
            events = [e async for e in client.stream(chunks(sample_pcm[:160000], 3200))]
    assert any(e.type == "final" and e.text for e in events)
