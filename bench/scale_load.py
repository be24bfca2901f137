"""The load generator of bench/mesh_scale.py: N live streams of real speech at real-time pace, in 100 ms chunks,
from processes of at most `per_process` streams each, through the mesh (what each final's overhead and busy
wait were) or through the relay (each chunk's round trip).

Each stream starts after its own delay (`start_delays`). Independent live clients start at random moments, so
their 100 ms ticks fall at random phases; starts spaced evenly by a multiple of 100 ms would put every
stream's chunks on the same instant, a burst no live traffic makes (kept as `aligned`, the worst case).
Each stream also starts at its own point of the speech (`speech_starts`), looping round to it: independent
speakers end their utterances at independent moments, where streams that all say the same words from the
same point, a few seconds apart, end theirs in bunches that meet the engine busy more often (kept as
`same`)."""

from __future__ import annotations

import asyncio
import math
import multiprocessing
import random
import resource
import time
from dataclasses import dataclass, field

from relay import RELAY_METHOD

from voxmesh import SAMPLE_RATE, SAMPLE_WIDTH

CHUNK_S = 0.1
CHUNK_BYTES = int(CHUNK_S * SAMPLE_RATE) * SAMPLE_WIDTH


def start_delays(streams: int, spread_s: float, aligned: bool, seed: int) -> list[float]:
    """Each stream's start: uniform at random over `spread_s` (seeded), or, `aligned`, spread evenly but
    snapped to whole chunks, so that every stream's ticks coincide."""
    if aligned:
        return [round(spread_s * i / max(1, streams) / CHUNK_S) * CHUNK_S for i in range(streams)]
    rng = random.Random(seed)
    return [rng.uniform(0.0, spread_s) for _ in range(streams)]


def speech_starts(streams: int, samples: int, same: bool, seed: int) -> list[int]:
    """The sample of the speech each stream starts at: uniform at random (seeded), or, `same`, its start."""
    if same:
        return [0] * streams
    rng = random.Random(f"speech {seed}")  # apart from the start delays' numbers
    return [rng.randrange(samples) for _ in range(streams)]


def rotated(pcm: bytes, start: int) -> bytes:
    """The speech from sample `start` on, then its beginning up to that sample."""
    cut = start * SAMPLE_WIDTH
    return pcm[cut:] + pcm[:cut]


@dataclass
class StreamResult:
    overheads: list[float] = field(default_factory=list)
    busy_waits: list[float] = field(default_factory=list)
    ends: int = 0
    finals: int = 0
    errors: list[str] = field(default_factory=list)
    refused: str = ""


async def mesh_stream(stub, pcm: bytes, delay: float) -> StreamResult:
    import grpc

    from voxmesh.v1 import transcription_pb2 as pb

    await asyncio.sleep(delay)
    result = StreamResult()
    sent: list[float] = []
    config = pb.StreamingConfig(
        format=pb.AudioFormat(encoding=pb.AudioFormat.LINEAR16, sample_rate_hz=SAMPLE_RATE, channels=1),
        language="en",
        post_processing=pb.PostProcessing(enabled=True),
        source=pb.AUDIO_SOURCE_LIVE,
    )

    async def requests():
        yield pb.StreamingTranscribeRequest(config=config)
        loop = asyncio.get_running_loop()
        start = loop.time()
        for index in range(0, len(pcm), CHUNK_BYTES):
            wait = start + len(sent) * CHUNK_S - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            sent.append(time.perf_counter())
            yield pb.StreamingTranscribeRequest(audio=pcm[index : index + CHUNK_BYTES])

    ended_at: dict[int, float] = {}
    try:
        async for event in stub.StreamingTranscribe(requests()):
            kind = event.WhichOneof("event")
            if kind == "speech_ended":
                result.ends += 1
                chunk = max(0, math.ceil(round(event.end_s / CHUNK_S, 6)) - 1)
                ended_at[event.utterance_id] = sent[min(chunk, len(sent) - 1)]
            elif kind == "final":
                arrived = time.perf_counter()
                result.finals += 1
                if event.utterance_id in ended_at:
                    latency = arrived - ended_at.pop(event.utterance_id)
                    result.overheads.append(latency - event.final.engine_compute_s)
                    result.busy_waits.append(event.final.engine_busy_wait_s)
            elif kind == "error":
                result.errors.append(f"{event.error.stage} {event.error.code}: {event.error.message}")
    except Exception as exc:  # a refused or broken stream is reported, not raised
        details = exc.details() if isinstance(exc, grpc.aio.AioRpcError) else str(exc)
        result.refused = f"{type(exc).__name__}: {details}"
    return result


async def relay_stream(call_factory, pcm: bytes, delay: float) -> StreamResult:
    await asyncio.sleep(delay)
    result = StreamResult()
    sent: dict[int, float] = {}
    call = call_factory()
    loop = asyncio.get_running_loop()

    async def write():
        start = loop.time()
        for number, index in enumerate(range(0, len(pcm), CHUNK_BYTES)):
            wait = start + number * CHUNK_S - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            sent[number] = time.perf_counter()
            await call.write(number.to_bytes(4, "big") + pcm[index : index + CHUNK_BYTES])
        await call.done_writing()

    writer = asyncio.create_task(write())
    try:
        async for message in call:
            number = int.from_bytes(message[:4], "big")
            result.overheads.append(time.perf_counter() - sent.pop(number))
        await writer
    except Exception as exc:
        result.refused = f"{type(exc).__name__}: {exc}"
        writer.cancel()
    return result


async def generate(target: str, mode: str, delays: list[float], starts: list[int], pcm: bytes):
    import grpc

    options = [("grpc.max_receive_message_length", 16 << 20)]
    streams = list(zip((rotated(pcm, start) for start in starts), delays, strict=True))
    async with grpc.aio.insecure_channel(target, options=options) as channel:
        if mode == "mesh":
            from voxmesh.v1 import transcription_pb2_grpc

            stub = transcription_pb2_grpc.TranscriptionStub(channel)
            jobs = [mesh_stream(stub, speech, delay) for speech, delay in streams]
        else:
            echo = channel.stream_stream(RELAY_METHOD)
            jobs = [relay_stream(echo, speech, delay) for speech, delay in streams]
        return await asyncio.gather(*jobs)


def generator_process(target, mode, delays, starts, pcm, out) -> None:
    results = asyncio.run(generate(target, mode, delays, starts, pcm))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    out.put((results, usage.ru_utime + usage.ru_stime))


def drive(target: str, mode: str, delays: list[float], starts: list[int], per_process: int, pcm: bytes):
    """Run one stream per start delay, each from its start in the speech, from processes of at most
    `per_process` streams each; their results and CPU seconds."""
    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    processes = []
    for first in range(0, len(delays), per_process):
        process = context.Process(
            target=generator_process,
            args=(target, mode, delays[first : first + per_process], starts[first : first + per_process], pcm, out),
        )
        process.start()
        processes.append(process)
    results, cpu = [], 0.0
    for _ in processes:
        chunk, seconds = out.get()
        results += chunk
        cpu += seconds
    for process in processes:
        process.join()
    return results, cpu
