"""The local stack: the four services as four OS processes on one machine.

Each service gets its documented default port, or a free one when the default is taken. The stack is
ready when every service's health check says SERVING; stopping sends SIGTERM (the services drain) and
kills what has not ended after the grace period.
"""

from __future__ import annotations

import asyncio
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

from voxmesh.settings import DEFAULT_METRICS_PORTS, DEFAULT_PORTS, SETTINGS

log = logging.getLogger("voxmesh.stack")

ORDER = ("vad", "asr", "llm", "gateway")
STOP_MARGIN_S = 5.0  # beyond a service's own drain delay and grace period, before it is killed


class StackError(RuntimeError):
    pass


def stop_wait_s(name: str) -> float:
    """How long a service may take to stop on SIGTERM: its drain delay and grace period (from the
    same environment it reads them from), plus a margin."""
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


@dataclass
class Member:
    name: str
    port: int
    metrics_port: int
    process: subprocess.Popen | None = None
    log_path: Path | None = None

    def log_tail(self, lines: int = 20) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


@dataclass
class LocalStack:
    """Start with `async with LocalStack(...) as stack:`; `stack.gateway` is the address clients call."""

    gateway_port: int = DEFAULT_PORTS["gateway"]
    host: str = "127.0.0.1"
    log_dir: Path | None = None  # None: the services log to this process's stderr
    ready_timeout_s: float = 180.0
    members: dict[str, Member] = field(default_factory=dict)

    @property
    def gateway(self) -> str:
        return f"{self.host}:{self.members['gateway'].port}"

    def address(self, name: str) -> str:
        return f"{self.host}:{self.members[name].port}"

    def metrics_url(self, name: str) -> str:
        return f"http://{self.host}:{self.members[name].metrics_port}/metrics"

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
        taken: set[int] = set()
        for name in ORDER:
            preferred = self.gateway_port if name == "gateway" else DEFAULT_PORTS[name]
            port = free_port(self.host, preferred, taken)
            if name == "gateway" and self.gateway_port and port != self.gateway_port:
                raise StackError(f"port {self.gateway_port} on {self.host} is taken; choose another with --port")
            self.members[name] = Member(name, port, free_port(self.host, DEFAULT_METRICS_PORTS[name], taken))

    def _command(self, member: Member) -> list[str]:
        command = [
            sys.executable, "-m", "voxmesh", "serve", member.name,
            "--host", self.host, "--port", str(member.port), "--metrics-port", str(member.metrics_port),
        ]
        if member.name == "gateway":
            for inner in ("vad", "asr", "llm"):
                command += [f"--{inner}-target", self.address(inner)]
        return command

    async def start(self) -> None:
        self._plan()
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
        for member in self.members.values():
            stderr = None
            if self.log_dir is not None:
                member.log_path = self.log_dir / f"{member.name}.log"
                stderr = member.log_path.open("w")
            member.process = subprocess.Popen(
                self._command(member), env=env, stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True
            )
            if stderr is not None:
                stderr.close()
        await self.wait_ready()

    async def wait_ready(self) -> None:
        deadline = time.monotonic() + self.ready_timeout_s
        waiting = set(self.members)
        channels = {n: grpc.aio.insecure_channel(self.address(n)) for n in self.members}
        try:
            while waiting:
                for name in sorted(waiting):
                    member = self.members[name]
                    if member.process.poll() is not None:
                        raise StackError(self._failure(member, f"exited with code {member.process.returncode}"))
                    try:
                        reply = await health_pb2_grpc.HealthStub(channels[name]).Check(
                            health_pb2.HealthCheckRequest(), timeout=1.0
                        )
                    except grpc.aio.AioRpcError:
                        continue
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        waiting.discard(name)
                if waiting and time.monotonic() > deadline:
                    slow = ", ".join(sorted(waiting))
                    raise StackError(f"{slow} did not report SERVING within {self.ready_timeout_s:g} s")
                if waiting:
                    await asyncio.sleep(0.2)
        finally:
            await asyncio.gather(*(c.close() for c in channels.values()))

    def _failure(self, member: Member, what: str) -> str:
        tail = member.log_tail()
        return f"the {member.name} service {what}" + (f"; its last log lines:\n{tail}" if tail else "")

    def stop(self) -> None:
        """SIGTERM the gateway first and let it drain its clients, then the inner services; kill stragglers."""
        self._terminate(["gateway"])
        self._terminate([n for n in ORDER if n != "gateway"])

    def _terminate(self, names: list[str]) -> None:
        processes = {n: self.members[n].process for n in names if n in self.members and self.members[n].process}
        for process in processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + max(stop_wait_s(name) for name in processes) if processes else 0
        for name, process in processes.items():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("killing a service that did not stop", extra={"service": name})
                process.kill()
                process.wait()
