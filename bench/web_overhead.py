"""What the web service adds over the direct gRPC path: the same live streams through the gateway's stubs
(the client library) and through the realtime WebSocket, in the same run.

    .venv/bin/python bench/web_overhead.py [--streams 1,50] [--seconds 20] [--spread-s 2] [--engine-ms 20]

The real stack of processes (VAD, ASR servicer, LLM, gateway, web), its ASR engine sleeping --engine-ms per
batch (bench/sleep_asr.py, as bench/mesh_scale.py does) so that the figures are the mesh's and not the
model's. N clients stream real speech (../shared/audio, looped to --seconds) at real-time pace in 100 ms
chunks, their starts spread over --spread-s: first all through gRPC (`Client.stream`, 16 kHz LINEAR16),
then all through `/v1/realtime` (OpenAI's GA dialect, 16 kHz PCM16 in base64 JSON appends).

Per final, at the client: latency = the final's arrival - the moment the client sent the audio through the
utterance's end offset, so every hop on the way in and on the way out counts (the gRPC path's final event;
the WebSocket's `.completed`, its offset from `voxmesh.transcription.timing`). It prints p50 and p95 per
path and their difference, the web service's overhead, and the finals delivered. Run it alone.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import bisect
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import websockets  # noqa: E402
from mesh_scale import ScaleStack, speech  # noqa: E402

from voxmesh import SAMPLE_RATE, SAMPLE_WIDTH  # noqa: E402
from voxmesh.client import Client, StreamOptions  # noqa: E402
from voxmesh.console import percentile  # noqa: E402

CHUNK = SAMPLE_RATE // 10 * SAMPLE_WIDTH  # 100 ms
IDLE_S = 4.0  # after the last audio, a WebSocket session is over once nothing comes for this long


class Sent:
    """When each chunk left the client: the time the audio through an offset was sent."""

    def __init__(self) -> None:
        self.ends: list[float] = []  # stream offset (s) at each chunk's end
        self.times: list[float] = []

    def mark(self, end_s: float) -> None:
        self.ends.append(end_s)
        self.times.append(time.monotonic())

    def at(self, offset_s: float) -> float | None:
        index = bisect.bisect_left(self.ends, offset_s - 1e-6)
        return self.times[index] if index < len(self.times) else None


async def paced(pcm: bytes, sent: Sent):
    started = time.monotonic()
    for index, offset in enumerate(range(0, len(pcm), CHUNK)):
        await asyncio.sleep(max(0.0, started + index * 0.1 - time.monotonic()))
        piece = pcm[offset : offset + CHUNK]
        yield piece
        sent.mark((offset + len(piece)) / (SAMPLE_RATE * SAMPLE_WIDTH))


async def direct(target: str, pcm: bytes, delay: float) -> list[float]:
    await asyncio.sleep(delay)
    sent, latencies = Sent(), []
    async with Client(target) as client:
        options = StreamOptions(post_processing=False, partials=False)
        async for event in client.stream(paced(pcm, sent), options=options):
            if event.type == "final" and (at := sent.at(event.end_s)) is not None:
                latencies.append(time.monotonic() - at)
    return latencies


async def realtime(url: str, pcm: bytes, delay: float) -> list[float]:
    await asyncio.sleep(delay)
    sent, latencies, arrived = Sent(), [], {}
    update = {
        "type": "session.update",
        "session": {"type": "transcription", "audio": {"input": {"format": {"type": "audio/pcm", "rate": 16000}}}},
    }
    async with websockets.connect(url) as ws:
        await ws.send(json.dumps(update))

        async def send() -> None:
            async for piece in paced(pcm, sent):
                await ws.send(
                    json.dumps({"type": "input_audio_buffer.append", "audio": base64.b64encode(piece).decode()})
                )
            await ws.send(json.dumps({"type": "input_audio_buffer.commit"}))

        sender = asyncio.create_task(send())
        try:
            while True:
                # once all the audio is sent, the session is over when nothing more comes for a few seconds
                wait = IDLE_S if sender.done() else None
                try:
                    message = await asyncio.wait_for(ws.recv(), wait)
                except TimeoutError:
                    break
                event = json.loads(message)
                kind = event["type"]
                if kind == "conversation.item.input_audio_transcription.completed":
                    arrived[event["item_id"]] = time.monotonic()
                elif (
                    kind == "voxmesh.transcription.timing"
                    and event["item_id"] in arrived
                    and (at := sent.at(event["end_s"])) is not None
                ):
                    latencies.append(arrived[event["item_id"]] - at)
        finally:
            sender.cancel()
    return latencies


def summary(values: list[float]) -> tuple[float, float]:
    return percentile(values, 50), percentile(values, 95)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", default="1,50")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--spread-s", type=float, default=2.0)
    parser.add_argument("--engine-ms", type=float, default=20.0)
    args = parser.parse_args()
    pcm = speech(args.seconds)
    logs = Path(tempfile.mkdtemp(prefix="voxmesh-web-bench-"))
    print(
        f"{args.seconds:g} s of real speech per stream, starts over {args.spread_s:g} s; engine {args.engine_ms:g} ms"
    )
    print()
    print("| live streams | path | finals | latency p50 ms | p95 ms | web overhead p50 ms | p95 ms |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    most = max(int(x) for x in args.streams.split(","))
    # the web service is measured, not admission (its tests and bench/overload.py cover it): admit every stream
    env = {
        "VOXMESH_GATEWAY_ADMIT_UTILIZATION": "2",
        "VOXMESH_GATEWAY_MAX_STREAMS": str(most + 16),
        "VOXMESH_ASR_QUEUE_SIZE": str(max(64, most * 2)),
    }
    async with ScaleStack(gateway_port=0, log_dir=logs, env=env, engine_ms=args.engine_ms) as stack:
        url = stack.web.replace("http", "ws") + "/v1/realtime"
        for n in (int(x) for x in args.streams.split(",")):
            delays = [args.spread_s * i / n for i in range(n)]
            grpc_runs = await asyncio.gather(*(direct(stack.gateway, pcm, d) for d in delays))
            web_runs = await asyncio.gather(*(realtime(url, pcm, d) for d in delays))
            g = [x for run in grpc_runs for x in run]
            w = [x for run in web_runs for x in run]
            (g50, g95), (w50, w95) = summary(g), summary(w)
            print(f"| {n} | gRPC (client library) | {len(g)} | {g50 * 1000:.1f} | {g95 * 1000:.1f} | | |")
            print(
                f"| {n} | /v1/realtime (WebSocket) | {len(w)} | {w50 * 1000:.1f} | {w95 * 1000:.1f} "
                f"| {(w50 - g50) * 1000:.1f} | {(w95 - g95) * 1000:.1f} |",
                flush=True,
            )
    print(f"\nlogs: {logs}")


if __name__ == "__main__":
    asyncio.run(main())
