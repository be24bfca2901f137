"""Channels from the gateway to the inner services, and which of them have a ready replica.

gRPC keeps one HTTP/2 connection per channel and sends every stream of the channel over it, so a plain
virtual-IP Service would pin all streams to one replica. Each channel therefore uses `round_robin` over
every address its target names or resolves to (`ipv4:10.0.0.1:50053,10.0.0.2:50053`, or a headless
Service's `dns:///asr-headless:50053`), with client-side health checks: a replica whose health says
NOT_SERVING (loading, or draining on SIGTERM) gets no new streams. Reconnect backoff is capped at 0.5 s,
so a replica that comes back serves within a second.

Each channel's connectivity is watched: READY means at least one healthy replica. The gateway's own health
follows the services every stream needs (VAD and ASR); post-processing is optional per stream, so the LLM
only degrades it. A new stream waits up to `replica_wait_s` for a ready replica of each service it needs.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable

import grpc

from voxmesh import errors, tls
from voxmesh.settings import GatewaySettings
from voxmesh.v1 import asr_pb2, asr_pb2_grpc, llm_pb2, llm_pb2_grpc, vad_pb2, vad_pb2_grpc

log = logging.getLogger("voxmesh.gateway.downstream")

GRPC_SERVICES = {
    "vad": vad_pb2.DESCRIPTOR.services_by_name["VoiceActivity"].full_name,
    "asr": asr_pb2.DESCRIPTOR.services_by_name["Recognizer"].full_name,
    "llm": llm_pb2.DESCRIPTOR.services_by_name["PostProcessor"].full_name,
}
REQUIRED = ("vad", "asr")  # every stream needs these; post-processing is asked for per stream
NAMES = {"vad": "VAD", "asr": "ASR", "llm": "LLM (post-processing)"}


def channel_options(settings: GatewaySettings, service: str) -> list[tuple[str, object]]:
    service_config = {
        "loadBalancingConfig": [{"round_robin": {}}],
        "healthCheckConfig": {"serviceName": GRPC_SERVICES[service]},
    }
    return [
        ("grpc.service_config", json.dumps(service_config)),
        ("grpc.keepalive_time_ms", 30_000),
        ("grpc.keepalive_timeout_ms", 10_000),
        ("grpc.initial_reconnect_backoff_ms", 100),
        ("grpc.min_reconnect_backoff_ms", 100),
        ("grpc.max_reconnect_backoff_ms", 500),
        ("grpc.max_receive_message_length", settings.max_message_bytes),
        ("grpc.max_send_message_length", settings.max_message_bytes),
    ]


class Downstream:
    """The three inner services, one channel each (create inside the event loop)."""

    def __init__(self, settings: GatewaySettings):
        self.targets = {"vad": settings.vad_target, "asr": settings.asr_target, "llm": settings.llm_target}
        credentials = None
        if settings.downstream_tls:
            credentials = tls.channel_credentials(
                settings.downstream_tls_ca_file or settings.tls_ca_file, settings.tls_cert_file, settings.tls_key_file
            )
        self.channels = {}
        for name, target in self.targets.items():
            options = channel_options(settings, name)
            self.channels[name] = (
                grpc.aio.insecure_channel(target, options=options)
                if credentials is None
                else grpc.aio.secure_channel(target, credentials, options=options)
            )
        self.vad = vad_pb2_grpc.VoiceActivityStub(self.channels["vad"])
        self.asr = asr_pb2_grpc.RecognizerStub(self.channels["asr"])
        self.llm = llm_pb2_grpc.PostProcessorStub(self.channels["llm"])
        self.ready = {name: asyncio.Event() for name in self.channels}
        self._watchers: list[asyncio.Task] = []

    @property
    def serving(self) -> bool:
        """Whether every service a stream needs has a ready replica."""
        return all(self.ready[name].is_set() for name in REQUIRED)

    def watch(self, on_change: Callable[[bool], Awaitable[None]]) -> None:
        """Follow each channel's connectivity; call `on_change(serving)` when `serving` may have changed."""
        self._watchers = [asyncio.create_task(self._watch(name, on_change)) for name in self.channels]

    async def _watch(self, name: str, on_change: Callable[[bool], Awaitable[None]]) -> None:
        channel = self.channels[name]
        while True:
            state = channel.get_state(try_to_connect=True)
            ready = state is grpc.ChannelConnectivity.READY
            if ready != self.ready[name].is_set():
                if ready:
                    self.ready[name].set()
                    log.info("downstream ready", extra={"service": name})
                else:
                    self.ready[name].clear()
                    log.warning("downstream has no ready replica", extra={"service": name, "state": state.name})
                await on_change(self.serving)
            await channel.wait_for_state_change(state)

    async def wait_for(self, name: str, timeout_s: float) -> bool:
        """Whether a replica of the service is ready, waiting up to `timeout_s` for one."""
        if not self.ready[name].is_set():
            try:
                await asyncio.wait_for(self.ready[name].wait(), timeout_s)
            except TimeoutError:
                return False
        return True

    async def require(self, names: tuple[str, ...], timeout_s: float) -> None:
        """Wait up to `timeout_s` for a ready replica of each service; UNAVAILABLE naming the missing ones."""
        ready = await asyncio.gather(*(self.wait_for(name, timeout_s) for name in names))
        missing = [NAMES[name] for name, ok in zip(names, ready, strict=True) if not ok]
        if missing:
            raise errors.Unavailable(
                f"no replica of the {' or the '.join(missing)} service is ready (waited {timeout_s:g} s); retry later"
            )

    async def wait_ready(self, log_every_s: float = 10.0) -> None:
        """Return once every service a stream needs has a ready replica."""
        while not self.serving:
            waiting = [name for name in REQUIRED if not self.ready[name].is_set()]
            ready = await asyncio.gather(*(self.wait_for(name, log_every_s) for name in waiting))
            if not all(ready):
                log.info("waiting for downstream", extra={"services": ",".join(waiting)})

    async def close(self) -> None:
        for task in self._watchers:
            task.cancel()
        await asyncio.gather(*self._watchers, return_exceptions=True)
        await asyncio.gather(*(channel.close() for channel in self.channels.values()))
