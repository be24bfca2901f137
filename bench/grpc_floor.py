"""The floor under every hop of the mesh: what Python's grpc.aio costs per message, with nothing else to do.

    .venv/bin/python bench/grpc_floor.py [--streams 100] [--seconds 15] [--loops asyncio,uvloop]
                                         [--transports grpc,voxmesh]

A server process answers every request of a bidirectional stream with one response (the VAD's messages:
100 ms of audio in, a small answer out); a client process runs --streams live streams, each sending one
request every 100 ms and reading its answer. It prints the server's CPU and context switches per message
(requests and responses together) and the round trip, per event loop of the server (`uvloop` only where it
is installed) and per transport of the server: `grpc` is grpcio's own default (its EventEngine endpoints),
`voxmesh` the GRPC_EXPERIMENTS that voxmesh sets (voxmesh/__init__.py). The client, which imports grpc
before voxmesh, is on grpc's own default, or on the GRPC_EXPERIMENTS it is run with. The
mesh's services pay this per message before any work of their own (see bench/README.md, mesh_scale.py).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from proc_stats import usage

from voxmesh import GRPC_EXPERIMENTS_DEFAULT
from voxmesh.stack import free_port
from voxmesh.v1 import vad_pb2, vad_pb2_grpc

CHUNK = bytes(3200)  # 100 ms of 16 kHz LINEAR16


class Echo(vad_pb2_grpc.VoiceActivityServicer):
    async def Detect(self, request_iterator, context):
        async for _ in request_iterator:
            yield vad_pb2.DetectResponse(input_through_s=1.0)


async def serve(port: int) -> None:
    server = grpc.aio.server()
    vad_pb2_grpc.add_VoiceActivityServicer_to_server(Echo(), server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


async def drive(port: int, streams: int, seconds: float) -> list[float]:
    round_trips: list[float] = []
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        await channel.channel_ready()
        stub = vad_pb2_grpc.VoiceActivityStub(channel)

        async def one(index: int) -> None:
            call = stub.Detect()
            began = time.monotonic() + 0.1 * index / streams  # the streams' ticks spread over 100 ms
            for n in range(int(seconds * 10)):
                await asyncio.sleep(max(0.0, began + n * 0.1 - time.monotonic()))
                sent = time.perf_counter()
                await call.write(vad_pb2.DetectRequest(audio=CHUNK))
                await call.read()
                round_trips.append(time.perf_counter() - sent)
            await call.done_writing()

        await asyncio.gather(*(one(i) for i in range(streams)))
    return sorted(round_trips)


TRANSPORTS = {"grpc": "", "voxmesh": GRPC_EXPERIMENTS_DEFAULT}  # the server's GRPC_EXPERIMENTS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--streams", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--loops", default="asyncio,uvloop")
    parser.add_argument("--transports", default="grpc,voxmesh", help="the server's: grpc, voxmesh (see above)")
    parser.add_argument("--serve", help=argparse.SUPPRESS)  # internal: LOOP:PORT, run the server
    args = parser.parse_args()
    if args.serve:
        loop, port = args.serve.split(":")
        if loop == "uvloop":
            import uvloop

            uvloop.install()
        asyncio.run(serve(int(port)))
        return
    print(f"{args.streams} streams, one 100 ms request and one answer each per 100 ms, {args.seconds:g} s")
    print(
        "| server event loop | server transport | messages | server CPU per message | context switches per message "
        "| round trip p50 | p99 | client CPU per message |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for loop in args.loops.split(","):
        if loop == "uvloop" and importlib.util.find_spec("uvloop") is None:
            print("| uvloop | | not installed (pip install uvloop) | | | | | |")
            continue
        for transport in args.transports.split(","):
            port = free_port("127.0.0.1", 0, set())
            env = {**os.environ, "GRPC_EXPERIMENTS": TRANSPORTS[transport]}
            server = subprocess.Popen([sys.executable, __file__, "--serve", f"{loop}:{port}"], env=env)
            try:
                time.sleep(1.0)  # the server starts
                before, client_before = usage(server.pid), time.process_time()
                round_trips = asyncio.run(drive(port, args.streams, args.seconds))
                client_used = time.process_time() - client_before
                after = usage(server.pid)
                used, switched = after[0] - before[0], after[1] - before[1]
            finally:
                server.terminate()
                server.wait(10)
            messages = 2 * len(round_trips)
            p50, p99 = round_trips[len(round_trips) // 2], round_trips[int(len(round_trips) * 0.99)]
            print(
                f"| {loop} | {transport} | {messages} | {used / messages * 1e6:.0f} us | {switched / messages:.1f} "
                f"| {p50 * 1e3:.2f} ms | {p99 * 1e3:.2f} ms | {client_used / messages * 1e6:.0f} us |",
                flush=True,
            )


if __name__ == "__main__":
    main()
