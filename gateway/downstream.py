"""Channels from the gateway to the inner services.

gRPC keeps one HTTP/2 connection per channel and sends every stream of the channel over it, so a plain
virtual-IP Service would pin all streams to one replica. Each channel therefore uses the `round_robin`
load-balancing policy: with a DNS target that resolves to every replica (`dns:///asr-headless:50053`),
streams are spread over all of them, and the name is re-resolved when connections change.
"""

from __future__ import annotations

import asyncio
import logging

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from voxmesh import tls
from voxmesh.settings import GatewaySettings
from voxmesh.v1 import asr_pb2_grpc, llm_pb2_grpc, vad_pb2_grpc

log = logging.getLogger("voxmesh.gateway.downstream")


def channel_options(settings: GatewaySettings) -> list[tuple[str, object]]:
    return [
        ("grpc.lb_policy_name", "round_robin"),
        ("grpc.keepalive_time_ms", 30_000),
        ("grpc.keepalive_timeout_ms", 10_000),
        ("grpc.max_receive_message_length", settings.max_message_bytes),
        ("grpc.max_send_message_length", settings.max_message_bytes),
    ]


class Downstream:
    """The three inner services, one channel each (create inside the event loop)."""

    def __init__(self, settings: GatewaySettings):
        options = channel_options(settings)
        self.targets = {"vad": settings.vad_target, "asr": settings.asr_target, "llm": settings.llm_target}
        if settings.downstream_tls:
            credentials = tls.channel_credentials(
                settings.downstream_tls_ca_file or settings.tls_ca_file, settings.tls_cert_file, settings.tls_key_file
            )
            self.channels = {
                name: grpc.aio.secure_channel(t, credentials, options=options) for name, t in self.targets.items()
            }
        else:
            self.channels = {name: grpc.aio.insecure_channel(t, options=options) for name, t in self.targets.items()}
        self.vad = vad_pb2_grpc.VoiceActivityStub(self.channels["vad"])
        self.asr = asr_pb2_grpc.RecognizerStub(self.channels["asr"])
        self.llm = llm_pb2_grpc.PostProcessorStub(self.channels["llm"])

    async def wait_ready(self, poll_s: float = 0.5, log_every_s: float = 10.0) -> None:
        """Return once every inner service's health says SERVING."""
        waiting = set(self.channels)
        loop = asyncio.get_running_loop()
        last_log = loop.time()
        while waiting:
            for name in sorted(waiting):
                stub = health_pb2_grpc.HealthStub(self.channels[name])
                try:
                    reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=2.0)
                except grpc.aio.AioRpcError:
                    continue
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    waiting.discard(name)
                    log.info("downstream ready", extra={"service": name, "target": self.targets[name]})
            if waiting:
                if loop.time() - last_log >= log_every_s:
                    log.info("waiting for downstream", extra={"services": ",".join(sorted(waiting))})
                    last_log = loop.time()
                await asyncio.sleep(poll_s)

    async def close(self) -> None:
        await asyncio.gather(*(channel.close() for channel in self.channels.values()))
