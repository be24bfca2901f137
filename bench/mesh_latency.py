"""How much latency the mesh adds to the engine, at several numbers of concurrent streams.

    .venv/bin/python bench/mesh_latency.py [--file samples/welcome.flac] [--streams 1,2,4]

Baseline, measured in the same run: the ASR engine alone, in this process, on the same utterances (the
file cut by the same segmenter). Then a local stack of the four real services, and N concurrent client
streams of the file at real-time pace. For each N it prints, measured at the client: speech end -> final
(p50, p95), the mesh's overhead (speech end -> final minus the engine's compute time for the utterance),
and the ratio of speech end -> final to the baseline engine time.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import webrtcvad  # noqa: E402

from voxmesh import audio  # noqa: E402
from voxmesh.client import Client, StreamOptions  # noqa: E402
from voxmesh.console import percentile  # noqa: E402
from voxmesh.services.asr.engines import AsrRequest  # noqa: E402
from voxmesh.services.asr.engines.whisper import WhisperEngine  # noqa: E402
from voxmesh.services.vad.segmenter import Segmenter, SpeechAudio  # noqa: E402
from voxmesh.settings import AsrSettings  # noqa: E402
from voxmesh.stack import LocalStack  # noqa: E402


def baseline(path: Path) -> list[float]:
    """Engine compute seconds per utterance, with no mesh around it."""
    samples, rate = audio.read_file(path)
    vad = webrtcvad.Vad(2)
    segmenter = Segmenter(lambda frame: vad.is_speech(frame, 16000))
    utterances: dict[int, bytearray] = {}
    pcm = audio.to_internal(samples, rate)
    for event in segmenter.push(pcm) + segmenter.flush():
        if isinstance(event, SpeechAudio):
            utterances.setdefault(event.utterance, bytearray()).extend(event.pcm)
    engine = WhisperEngine(AsrSettings())
    engine.warmup()
    times = []
    for pcm_bytes in utterances.values():
        started = time.perf_counter()
        engine.transcribe([AsrRequest(audio.pcm_to_float(pcm_bytes), None, final=True)])
        times.append(time.perf_counter() - started)
    engine.close()
    return times


async def one_stream(target: str, path: Path) -> tuple[list[float], list[float]]:
    ends: dict[int, float] = {}
    end_to_final, overhead = [], []
    async with Client(target) as client:
        async for event in client.stream_file(path, pace="realtime", options=StreamOptions(post_processing=True)):
            now = time.monotonic()
            if event.type == "speech_end":
                ends[event.utterance] = now
            elif event.type == "final" and event.utterance in ends:
                latency = now - ends.pop(event.utterance)
                end_to_final.append(latency)
                overhead.append(latency - event.engine_compute_s)
    return end_to_final, overhead


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--file", type=Path, default=ROOT / "samples" / "welcome.flac")
    parser.add_argument("--streams", default="1,2,4", help="comma-separated numbers of concurrent streams")
    args = parser.parse_args()

    engine_times = baseline(args.file)
    engine_p50 = statistics.median(engine_times)
    print(f"file: {args.file.name}; {len(engine_times)} utterances")
    print(f"baseline, engine alone in-process: p50 {engine_p50 * 1000:.0f} ms per utterance")
    print()
    print("| streams | speech end -> final p50 | p95 | mesh overhead p50 | p95 | p50 / engine alone |")
    print("| --- | --- | --- | --- | --- | --- |")
    async with LocalStack(gateway_port=0, log_dir=Path(tempfile.mkdtemp(prefix="voxmesh-bench-"))) as stack:
        for n in (int(x) for x in args.streams.split(",")):
            results = await asyncio.gather(*(one_stream(stack.gateway, args.file) for _ in range(n)))
            latency = [x for r in results for x in r[0]]
            overhead = [x for r in results for x in r[1]]
            print(
                f"| {n} | {percentile(latency, 50) * 1000:.0f} ms | {percentile(latency, 95) * 1000:.0f} ms "
                f"| {percentile(overhead, 50) * 1000:.1f} ms | {percentile(overhead, 95) * 1000:.1f} ms "
                f"| {percentile(latency, 50) / engine_p50:.2f} |",
                flush=True,
            )


if __name__ == "__main__":
    asyncio.run(main())
