"""The local stack: the services (the four of the mesh, and the web service) as OS processes on one machine,
one or more replicas each.

Each replica gets a port: a single replica its service's documented default (or a free one when that is
taken), further replicas free ones. With several replicas of a service, the services that call it get a
target naming every replica (`ipv4:127.0.0.1:P1,127.0.0.1:P2`) and spread streams over the healthy ones;
the gateway's target, for clients, names every gateway replica. The stack is ready when every replica's
health says SERVING. A replica can be killed, stopped and started again on its port (what bench/chaos.py
and the failover tests do). Stopping the stack sends SIGTERM (the services drain) and kills what has not
ended after the grace period.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from voxmesh import DEFAULT_METRICS_PORTS, DEFAULT_PORTS

log = logging.getLogger("voxmesh.stack")

ORDER = ("vad", "asr", "llm", "gateway", "web")  # web last: it calls the gateway
WEB_HTTP_PORT = 8080
STOP_MARGIN_S = 5.0  # beyond a service's own drain delay and grace period, before it is killed


class StackError(RuntimeError):
    pass


def stop_wait_s(name: str) -> float:
    """How long a service may take to stop on SIGTERM: its drain delay and grace period (from the
    same environment it reads them from), plus a margin."""
    from voxmesh.settings import SETTINGS

    try:
        settings = SETTINGS[name]()
    except ValueError:  # settings the service itself will refuse; it stops at once
        return STOP_MARGIN_S
    return settings.drain_delay_s + settings.grace_s + STOP_MARGIN_S


def free_port(host: str, preferred: int, taken: set[int]) -> int:
    """The preferred port if it can be bound on host, else one the system picks."""
    for port in (preferred, 0):
        if port in taken:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue
            chosen = sock.getsockname()[1]
            if chosen not in taken:
                taken.add(chosen)
                return chosen
    return free_port(host, 0, taken)


def parse_replicas(text: str) -> dict[str, int]:
    """`asr=2,vad=2` -> {"asr": 2, "vad": 2}; every service not named has one."""
    replicas = {name: 1 for name in ORDER}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, count = part.partition("=")
        if name not in replicas or not count.isdigit() or not 1 <= int(count) <= 16:
            raise ValueError(f"{part!r} is not SERVICE=N with SERVICE one of {', '.join(ORDER)} and N from 1 to 16")
        replicas[name] = int(count)
    return replicas


@dataclass
class Member:
    name: str
    index: int  # replica number, from 0
    port: int
    metrics_port: int
    http_port: int = 0  # the web service's HTTP and WebSocket port
    process: subprocess.Popen | None = None
    log_path: Path | None = None

    @property
    def label(self) -> str:
        return f"{self.name}-{self.index + 1}"

    def log_tail(self, lines: int = 20) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


@dataclass
class LocalStack:
    """Start with `async with LocalStack(...) as stack:`; `stack.gateway` is the target clients call."""

    gateway_port: int = DEFAULT_PORTS["gateway"]
    host: str = "127.0.0.1"
    log_dir: Path | None = None  # None: the services log to this process's stderr
    ready_timeout_s: float = 180.0
    replicas: dict[str, int] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)  # extra environment for every service
    members: list[Member] = field(default_factory=list)

    def replicas_of(self, name: str) -> list[Member]:
        return [m for m in self.members if m.name == name]

    @property
    def gateway(self) -> str:
        return self.address("gateway")

    @property
    def web(self) -> str:
        """The web service's base URL (its first replica)."""
        member = self.replicas_of("web")[0]
        return f"http://{self.host}:{member.http_port}"

    def address(self, name: str) -> str:
        """The gRPC target of a service: every replica's address."""
        ports = [m.port for m in self.replicas_of(name)]
        if len(ports) == 1:
            return f"{self.host}:{ports[0]}"
        return "ipv4:" + ",".join(f"{self.host}:{port}" for port in ports)

    def metrics_url(self, name: str, index: int = 0) -> str:
        return f"http://{self.host}:{self.replicas_of(name)[index].metrics_port}/metrics"

    async def __aenter__(self) -> LocalStack:
        try:
            await self.start()
        except BaseException:
            self.stop()
            raise
        return self

    async def __aexit__(self, *exc) -> None:
        await asyncio.to_thread(self.stop)

    def _plan(self) -> None:
        counts = {name: self.replicas.get(name, 1) for name in ORDER}
        if max(counts.values()) > 1:
            try:
                ipaddress.IPv4Address(self.host)
            except ValueError:
                raise StackError(f"replicas need an IPv4 host address, not {self.host!r}") from None
        taken: set[int] = set()
        self.members = []
        for name in ORDER:
            for index in range(counts[name]):
                preferred = (self.gateway_port if name == "gateway" else DEFAULT_PORTS[name]) if index == 0 else 0
                port = free_port(self.host, preferred, taken)
                if name == "gateway" and index == 0 and self.gateway_port and port != self.gateway_port:
                    raise StackError(f"port {self.gateway_port} on {self.host} is taken; choose another with --port")
                metrics = free_port(self.host, DEFAULT_METRICS_PORTS[name] if index == 0 else 0, taken)
                http = free_port(self.host, WEB_HTTP_PORT if index == 0 else 0, taken) if name == "web" else 0
                self.members.append(Member(name, index, port, metrics, http))

    def _command(self, member: Member) -> list[str]:
        command = [
            sys.executable,
            "-m",
            "voxmesh",
            "serve",
            member.name,
            "--host",
            self.host,
            "--port",
            str(member.port),
            "--metrics-port",
            str(member.metrics_port),
        ]
        if member.name == "gateway":
            for inner in ("vad", "asr", "llm"):
                command += [f"--{inner}-target", self.address(inner)]
        if member.name == "web":
            command += ["--gateway-target", self.address("gateway"), "--http-port", str(member.http_port)]
        return command

    async def start(self) -> None:
        self._plan()
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
        for member in self.members:
            self._launch(member)
        await self.wait_ready()

    def _launch(self, member: Member) -> None:
        stderr = None
        if self.log_dir is not None:
            member.log_path = self.log_dir / f"{member.label}.log"
            stderr = member.log_path.open("a")
        member.process = subprocess.Popen(
            self._command(member),
            env={**os.environ, "PYTHONUNBUFFERED": "1", **self.env},
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            start_new_session=True,
        )
        if stderr is not None:
            stderr.close()

    async def wait_ready(self, members: list[Member] | None = None) -> None:
        members = self.members if members is None else members
        deadline = time.monotonic() + self.ready_timeout_s
        waiting = {m.label: m for m in members}
        channels = {label: grpc.aio.insecure_channel(f"{self.host}:{m.port}") for label, m in waiting.items()}
        try:
            while waiting:
                for label, member in sorted(waiting.items()):
                    process = member.process
                    assert process is not None  # every member waited for was launched
                    if process.poll() is not None:
                        raise StackError(self._failure(member, f"exited with code {process.returncode}"))
                    try:
                        reply = await health_pb2_grpc.HealthStub(channels[label]).Check(
                            health_pb2.HealthCheckRequest(), timeout=1.0
                        )
                    except grpc.aio.AioRpcError:
                        continue
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        del waiting[label]
                if waiting and time.monotonic() > deadline:
                    slow = ", ".join(sorted(waiting))
                    raise StackError(f"{slow} did not report SERVING within {self.ready_timeout_s:g} s")
                if waiting:
                    await asyncio.sleep(0.1)
        finally:
            await asyncio.gather(*(c.close() for c in channels.values()))

    def _failure(self, member: Member, what: str) -> str:
        tail = member.log_tail()
        return f"the {member.label} service {what}" + (f"; its last log lines:\n{tail}" if tail else "")

    # -- one replica ------------------------------------------------------------------------------

    def kill(self, member: Member) -> None:
        """SIGKILL: the replica dies at once, as in a crash or an OOM kill."""
        process = member.process
        assert process is not None, f"{member.label} was never started"
        if process.poll() is None:
            process.kill()
        process.wait()

    def terminate(self, member: Member) -> None:
        """SIGTERM, and wait for the replica to drain and stop (kill it after its grace period)."""
        self._terminate([member])

    async def restart(self, member: Member) -> None:
        """Start a stopped replica again on its port, and wait until it says SERVING."""
        if member.process is not None and member.process.poll() is None:
            raise StackError(f"{member.label} is still running")
        self._launch(member)
        await self.wait_ready([member])

    # -- the whole stack --------------------------------------------------------------------------

    def stop(self) -> None:
        """SIGTERM the web service and the gateways first and let them drain their clients, then the inner
        services; kill stragglers."""
        self._terminate(self.replicas_of("web"))
        self._terminate(self.replicas_of("gateway"))
        self._terminate([m for m in self.members if m.name not in ("gateway", "web")])

    def _terminate(self, members: list[Member]) -> None:
        running = [(m, m.process) for m in members if m.process is not None]
        for _, process in running:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + max((stop_wait_s(m.name) for m, _ in running), default=0)
        for member, process in running:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("killing a service that did not stop", extra={"service": member.label})
                process.kill()
                process.wait()
