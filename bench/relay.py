"""A minimal two-hop gRPC relay, the floor bench/mesh_scale.py holds the mesh against: a front process forwards
each bidirectional stream to a back process, which echoes every message; bytes in, bytes out, no protobuf.

    python bench/relay.py PORT [TARGET]    (with TARGET: the front, forwarding there; without: the back)
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

RELAY_METHOD = "/bench.Relay/Echo"


async def serve_relay(port: int, target: str) -> None:
    """Front (target set): forwards each stream to the target and its answers back. Back: echoes."""
    import grpc

    channel = grpc.aio.insecure_channel(target) if target else None

    async def echo(request_iterator, context):
        if channel is None:
            async for message in request_iterator:
                yield message
            return
        call = channel.stream_stream(RELAY_METHOD)()

        async def forward():
            async for message in request_iterator:
                await call.write(message)
            await call.done_writing()

        forwarding = asyncio.create_task(forward())
        async for message in call:
            yield message
        await forwarding

    server = grpc.aio.server()
    handler = grpc.method_handlers_generic_handler("bench.Relay", {"Echo": grpc.stream_stream_rpc_method_handler(echo)})
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


class Relay:
    """The two relay processes, on free local ports; `target` is where clients call."""

    def __init__(self):
        from voxmesh.stack import free_port

        taken: set[int] = set()
        self.back_port = free_port("127.0.0.1", 0, taken)
        self.front_port = free_port("127.0.0.1", 0, taken)
        me = [sys.executable, __file__]
        self.back = subprocess.Popen([*me, str(self.back_port)])
        self.front = subprocess.Popen([*me, str(self.front_port), f"127.0.0.1:{self.back_port}"])
        time.sleep(2.0)

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.front_port}"

    @property
    def pids(self) -> tuple[int, int]:
        return self.front.pid, self.back.pid

    def stop(self) -> None:
        for process in (self.front, self.back):
            process.terminate()
            process.wait()


if __name__ == "__main__":
    asyncio.run(serve_relay(int(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else ""))
