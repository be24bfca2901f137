"""How much latency the mesh adds to the embedded engine (faster-whisper tiny.en on the CPU), at several
numbers of concurrent streams.

    .venv/bin/python bench/mesh_latency.py [--file samples/welcome.flac] [--streams 1,2,4]
                                           [--stagger-s 0] [--partials off,on] [--target-p95-s 1.5]
                                           [--words] [--phrase PHRASE ...] [--env KEY=VALUE ...]

Baseline, measured in the same run: the engine alone, in this process, on the same utterances (the file
cut by the same segmenter). Then a local stack of the four real services, and N client streams of the
file at real-time pace, started together (--stagger-s 0) or spread evenly over --stagger-s seconds, as
live traffic arrives. For each N and each --partials setting it prints, measured at the client: speech end
-> final (p50, p95), the mesh's overhead (speech end -> final minus the engine's compute time for the
utterance, so a final that waited for another request counts), the part of the finals' wait the engine
spent on other requests (the ASR's engine_busy_wait_s), and the ratio of speech end -> final to the engine
alone, and how many streams admission refused (RESOURCE_EXHAUSTED: the mesh at capacity). Last, the
largest N, all admitted, whose speech end -> final p95 is at most --target-p95-s.

--words and --phrase add runs of the same streams asking for word timings, or with the phrase hints, beside
the run without them, in the same stack: the engine compute column (p50, p95 of each final's
engine_compute_s) is what each ask costs.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import grpc  # noqa: E402

from voxmesh import audio  # noqa: E402
from voxmesh.client import Client, StreamOptions  # noqa: E402
from voxmesh.console import percentile  # noqa: E402
from voxmesh.services.asr.engines import AsrRequest  # noqa: E402
from voxmesh.services.asr.engines.whisper import WhisperEngine  # noqa: E402
from voxmesh.services.vad.classifiers import load_engine as load_classifier  # noqa: E402
from voxmesh.services.vad.segmenter import Segmenter, SpeechAudio  # noqa: E402
from voxmesh.settings import AsrSettings, VadSettings  # noqa: E402
from voxmesh.stack import LocalStack  # noqa: E402


def baseline(path: Path) -> list[float]:
    """Engine compute seconds per utterance, with no mesh around it."""
    samples, rate = audio.read_file(path)
    segmenter = Segmenter(load_classifier(VadSettings()).stream())
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


@dataclass
class Measured:
    end_to_final: list[float] = field(default_factory=list)
    overhead: list[float] = field(default_factory=list)
    busy_wait: list[float] = field(default_factory=list)
    compute: list[float] = field(default_factory=list)
    refused: int = 0  # streams the gateway did not admit (RESOURCE_EXHAUSTED: at capacity)

    def add(self, other: Measured) -> None:
        self.end_to_final += other.end_to_final
        self.overhead += other.overhead
        self.busy_wait += other.busy_wait
        self.compute += other.compute
        self.refused += other.refused


async def one_stream(target: str, path: Path, options: StreamOptions, delay: float) -> Measured:
    await asyncio.sleep(delay)
    ends: dict[int, float] = {}
    measured = Measured()
    async with Client(target) as client:
        try:
            async for event in client.stream_file(path, pace="realtime", options=options):
                now = time.monotonic()
                if event.type == "speech_end":
                    ends[event.utterance] = now
                elif event.type == "final" and event.utterance in ends:
                    latency = now - ends.pop(event.utterance)
                    measured.end_to_final.append(latency)
                    measured.overhead.append(latency - event.engine_compute_s)
                    measured.busy_wait.append(event.engine_busy_wait_s)
                    measured.compute.append(event.engine_compute_s)
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.RESOURCE_EXHAUSTED:
                raise
            measured.refused = 1
    return measured


def ms(values: list[float], q: float) -> str:
    return f"{percentile(values, q) * 1000:.0f}" if values else "-"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--file", type=Path, default=ROOT / "samples" / "welcome.flac")
    parser.add_argument("--streams", default="1,2,4", help="comma-separated numbers of concurrent streams")
    parser.add_argument("--stagger-s", type=float, default=0.0, help="spread the streams' starts over this long")
    parser.add_argument("--partials", default="off", help="off, on, or off,on (both, in the same run)")
    parser.add_argument("--target-p95-s", type=float, default=1.5)
    parser.add_argument("--env", action="append", default=[], help="KEY=VALUE for every service (repeatable)")
    parser.add_argument("--words", action="store_true", help="also run the streams asking for word timings")
    parser.add_argument("--phrase", action="append", default=[], help="also run them with this phrase hint")
    args = parser.parse_args()
    asks = {"none": {}}
    if args.words:
        asks["words"] = {"word_timings": True}
    if args.phrase:
        asks["phrases"] = {"phrases": tuple((phrase, 0.0) for phrase in args.phrase)}

    engine_times = baseline(args.file)
    engine_p50 = statistics.median(engine_times)
    print(f"file: {args.file.name}; {len(engine_times)} utterances; starts spread over {args.stagger_s:g} s")
    print(f"baseline, engine alone in-process: p50 {engine_p50 * 1000:.0f} ms per utterance")
    print()
    print(
        "| streams | partials | asks | speech end -> final p50 ms | p95 ms | mesh overhead p50 ms | p95 ms "
        "| engine busy with others p95 ms | engine compute p50 ms | p95 ms | p50 / engine alone "
        "| refused by admission |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    within: dict[str, int] = {}
    env = dict(item.split("=", 1) for item in args.env)
    logs = Path(tempfile.mkdtemp(prefix="voxmesh-bench-"))
    async with LocalStack(gateway_port=0, log_dir=logs, env=env) as stack:
        for n in (int(x) for x in args.streams.split(",")):
            for setting in args.partials.split(","):
                for ask, extra in asks.items():
                    options = StreamOptions(post_processing=True, partials=setting == "on", **extra)
                    delays = [args.stagger_s * i / n for i in range(n)]
                    results = await asyncio.gather(*(one_stream(stack.gateway, args.file, options, d) for d in delays))
                    total = Measured()
                    for result in results:
                        total.add(result)
                    print(
                        f"| {n} | {setting} | {ask} | {ms(total.end_to_final, 50)} | {ms(total.end_to_final, 95)} "
                        f"| {ms(total.overhead, 50)} | {ms(total.overhead, 95)} | {ms(total.busy_wait, 95)} "
                        f"| {ms(total.compute, 50)} | {ms(total.compute, 95)} "
                        f"| {percentile(total.end_to_final, 50) / engine_p50:.2f} | {total.refused} |",
                        flush=True,
                    )
                    if ask == "none" and not total.refused and percentile(total.end_to_final, 95) <= args.target_p95_s:
                        within[setting] = max(within.get(setting, 0), n)
    print()
    for setting in args.partials.split(","):
        print(
            f"largest number of streams with speech end -> final p95 <= {args.target_p95_s:g} s, partials {setting}: "
            f"{within.get(setting, 0)}"
        )


if __name__ == "__main__":
    asyncio.run(main())
