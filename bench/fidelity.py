"""Fidelity: does segmenting a stream cost words? The mesh's finals against the same engine offline on the
whole file, on clean and noisy speech.

    .venv/bin/python bench/fidelity.py [--configs NAME,...] [--try NAME:KEY=VALUE,...] [--snr clean,20,10,5]
                                       [--noise white,babble]
                                       [--files a.wav b.flac --references refs.tsv] [--seed 1] [--shifts 0]
                                       [--latency] [--latency-rounds 3] [--vad-streams 50]

Clips:
- real human speech from ../shared/audio (jfk.flac, alsa_channels.flac), with their reference text;
- synthetic speech, labelled as such: espeak-ng in several voices and rates (and Debian's mbrola voices where
  their data is installed; they are in non-free and absent on most machines), each clip a few sentences
  joined with pauses of varied length (0.2-1.4 s), so some sentences run together and some stand apart;
- or your own files: --files with --references, a file of `name<TAB>reference text` lines (name: the file's
  name, with or without its extension).
Each clip runs clean and mixed with noise at each --snr (dB, the power of the whole clean clip over the
noise's): white noise, and a babble of other speech (five other synthetic talkers overlaid at random offsets).
The seed of every noise is printed beside its row.

Per configuration (a VAD engine with its settings, and the ASR's context across utterances, as environment
for a local stack), every clip is streamed with `pace=fast` through a fresh stack and its finals are joined
into a transcript. "Offline" is faster-whisper's `WhisperModel.transcribe` on the whole file with its
defaults (beam 5, conditioned on previous text), the same model and compute type as the service. WER is
against the reference text. --show prints every transcript: offline's, and each configuration's finals with
// between them, so that the VAD's cuts show beside the words.

With --shifts (e.g. 0,5,15,25), each clip also runs with that many milliseconds of silence before it, offline
and through the mesh: nothing a listener would hear, but Whisper's frame grid moves against the speech. The
table then gives each clip's mean WER over its shifts and offline's range, and a line per level says how
many clips' WER moved by more than the goal's 0.01 over the shifts (bench/fidelity_report.py).

It also prints the utterances each configuration cut per level (count, mean length, longest), and the
VAD's cost: seconds of classifier time per second of audio, per engine, in this process; with --latency,
speech end -> final p50 and p95 on the clean clips streamed in real time, per configuration:
--latency-rounds rounds, each running every configuration once in turn on a fresh stack, so that a slow
spell of the machine falls on every configuration alike, and each configuration's p95 as a ratio to the
first configuration's, pooled and per round, and the ends at or above each p95 (which clip, which utterance);
with --vad-streams N, the VAD hop's latency with N live streams on one VAD process, per engine (from sending
a chunk to the response computed from it, by its input_through_s).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fidelity_clips import Clip, human_clips, mixed, synthetic_clips, user_clips  # noqa: E402
from fidelity_report import Row, print_report  # noqa: E402

from voxmesh import SAMPLE_RATE, text  # noqa: E402
from voxmesh.audio import float_to_pcm  # noqa: E402

# name: environment of the local stack (what is not named is the default: webrtcvad, context on, no merging)
MERGE = {"VOXMESH_VAD_MIN_UTTERANCE_S": "3"}
CONFIGS: dict[str, dict[str, str]] = {
    "webrtcvad": {"VOXMESH_ASR_CONTEXT_TOKENS": "0"},  # the defaults before context
    "webrtcvad+text-context": {"VOXMESH_ASR_CONTEXT_AUDIO_S": "0"},  # context as a prompt only
    "webrtcvad+context": {},  # the defaults: the prompt, and the lead's audio heard before the utterance
    "webrtcvad+context+merge": MERGE,
    "silero": {"VOXMESH_VAD_ENGINE": "silero", "VOXMESH_ASR_CONTEXT_TOKENS": "0"},
    "silero+context": {"VOXMESH_VAD_ENGINE": "silero"},
    "silero+context+merge": {"VOXMESH_VAD_ENGINE": "silero", **MERGE},
}


def offline(model, audio: np.ndarray) -> str:
    segments, _ = model.transcribe(audio, language="en", beam_size=5)
    return " ".join(s.text.strip() for s in segments)


async def through_mesh(stack_target: str, path: Path, pace: str) -> tuple[list[str], dict[int, float], list[float]]:
    """The stream's finals in order, each utterance's speech end -> final in seconds, and the utterances' lengths
    (start to end, seconds)."""
    from voxmesh.client import Client, StreamOptions

    finals: dict[int, str] = {}
    ended: dict[int, float] = {}
    latencies: dict[int, float] = {}
    lengths: list[float] = []
    async with Client(stack_target) as client:
        options = StreamOptions(post_processing=False)
        async for event in client.stream_file(path, pace=pace, options=options):
            if event.type == "speech_end":  # it carries the utterance's span
                ended[event.utterance] = time.monotonic()
                lengths.append(event.end_s - event.start_s)
            elif event.type == "final":
                finals[event.utterance] = event.text
                if event.utterance in ended:
                    latencies[event.utterance] = time.monotonic() - ended.pop(event.utterance)
            elif event.type == "error":
                print(f"    error event: {event}", flush=True)
    return [finals[u] for u in sorted(finals)], latencies, lengths


def p95(values: list[float]) -> float:
    return float(np.percentile(values, 95)) if values else float("nan")


def vad_cost(clips: list[Clip]) -> dict[str, float]:
    """Classifier seconds per second of audio, per engine, one stream at a time."""
    from voxmesh.services.vad import classifiers
    from voxmesh.settings import VadSettings

    audio = np.concatenate([c.audio for c in clips])
    pcm = float_to_pcm(audio)
    costs = {}
    for engine_name in classifiers.ENGINES:
        engine = classifiers.load_engine(VadSettings(engine=engine_name))
        frame = SAMPLE_RATE * engine.frame_ms // 1000 * 2
        chunk = SAMPLE_RATE // 10 * 2 // frame * frame  # whole frames of about 100 ms, as a live stream sends
        classifier = engine.stream()
        began = time.process_time()
        for offset in range(0, len(pcm) - chunk, chunk):
            classifier.classify(pcm[offset : offset + chunk])
        costs[engine_name] = (time.process_time() - began) / (len(audio) / SAMPLE_RATE)
    return costs


async def vad_hop(engine: str, streams: int, seconds: float, audio: np.ndarray, aligned: bool) -> list[float]:
    """Latency of one VAD process's responses with `streams` live streams: send time of the chunk that took the
    stream's input to a response's input_through_s, to the response's arrival. `aligned`: every stream sends
    its chunk at the same moment (the worst case: the VAD gets them all at once); else the streams' 100 ms
    ticks are spread evenly, as independent live streams' are."""
    import grpc

    from voxmesh.stack import free_port
    from voxmesh.v1 import vad_pb2, vad_pb2_grpc

    port = free_port("127.0.0.1", 0, set())
    env = {**os.environ, "VOXMESH_VAD_ENGINE": engine, "VOXMESH_VAD_METRICS_PORT": "0"}
    process = subprocess.Popen(
        [sys.executable, "-m", "voxmesh", "serve", "vad", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    pcm = float_to_pcm(audio)
    chunk = SAMPLE_RATE // 10 * 2
    latencies: list[float] = []
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            await asyncio.wait_for(channel.channel_ready(), 60)
            stub = vad_pb2_grpc.VoiceActivityStub(channel)

            async def one(index: int) -> None:
                sent: dict[int, float] = {}
                start = (index * 7919 * chunk) % (len(pcm) - chunk)
                start -= start % 2

                async def requests():
                    yield vad_pb2.DetectRequest(config=vad_pb2.DetectConfig(sample_rate_hz=SAMPLE_RATE))
                    began = time.monotonic() + (0.0 if aligned else 0.1 * index / streams)
                    await asyncio.sleep(max(0.0, began - time.monotonic()))
                    count = int(seconds * 10)
                    for n in range(count):
                        offset = (start + n * chunk) % (len(pcm) - chunk)
                        offset -= offset % 2
                        if n < count - 1:  # what answers the last chunk comes when the stream ends (a flush)
                            sent[(n + 1) * chunk // 2] = time.monotonic()
                        yield vad_pb2.DetectRequest(audio=pcm[offset : offset + chunk])
                        await asyncio.sleep(max(0.0, began + (n + 1) * 0.1 - time.monotonic()))

                async for response in stub.Detect(requests()):
                    through = round(response.input_through_s * SAMPLE_RATE)
                    if through in sent and response.WhichOneof("event") is not None:
                        latencies.append(time.monotonic() - sent[through])

            await asyncio.gather(*(one(i) for i in range(streams)))
    finally:
        process.terminate()
        process.wait(30)
    return latencies


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", default=",".join(CONFIGS), help="comma-separated names of CONFIGS")
    parser.add_argument(
        "--try",
        dest="tries",
        action="append",
        default=[],
        metavar="NAME:KEY=VALUE[,KEY=VALUE]",
        help="one more configuration: a name and settings as environment (repeatable)",
    )
    parser.add_argument("--snr", default="clean,20,10,5")
    parser.add_argument("--noise", default="white,babble")
    parser.add_argument("--files", nargs="*", default=[])
    parser.add_argument("--references", default="")
    parser.add_argument("--no-synthetic", action="store_true")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--shifts",
        default="0",
        help="ms of silence put before each clip, comma-separated: each clip runs once per shift (see below)",
    )
    parser.add_argument(
        "--show",
        action="store_true",
        help="print offline's transcripts and each configuration's finals (// between finals)",
    )
    parser.add_argument("--latency", action="store_true", help="speech end -> final in real time, clean clips")
    parser.add_argument("--latency-rounds", type=int, default=3, help="rounds of every configuration in turn")
    parser.add_argument("--vad-streams", type=int, default=0, help="live streams for the VAD hop figure")
    args = parser.parse_args()

    from faster_whisper import WhisperModel

    from voxmesh.services.asr.engines.whisper import default_model
    from voxmesh.stack import LocalStack

    if args.files:
        if not args.references:
            raise SystemExit("--files needs --references (lines of `name<TAB>reference text`)")
        clips = user_clips(args.files, args.references)
    else:
        clips = human_clips() + ([] if args.no_synthetic else synthetic_clips(args.seed))
    configs = [name.strip() for name in args.configs.split(",") if name.strip()]
    for extra in args.tries:
        name, _, assignments = extra.partition(":")
        CONFIGS[name] = dict(item.split("=", 1) for item in assignments.split(",") if item)
        configs.append(name)
    shifts = [int(ms) for ms in args.shifts.split(",")]
    conditions = [("clean", None, 0)]
    for snr in args.snr.split(","):
        if snr != "clean":
            for kind in args.noise.split(","):
                seed = args.seed * 1000 + len(conditions)
                conditions.append((kind, float(snr), seed))

    model_path, label = default_model()
    model = WhisperModel(model_path, device="cpu", compute_type="int8")
    print(f"offline: faster-whisper {label} int8, beam 5, conditioned on previous text; WER vs the reference")
    work = Path(tempfile.mkdtemp(prefix="fidelity-"))
    rows = []
    for clip in clips:
        for kind, snr, seed in conditions:
            noisy = clip.audio if snr is None else mixed(clip.audio, kind, snr, seed)
            row = Row(clip, kind, snr, seed)
            for shift in shifts:
                audio = np.concatenate([np.zeros(SAMPLE_RATE * shift // 1000, np.float32), noisy])
                path = work / f"{len(rows)}-{shift}.wav"
                sf.write(path, audio, SAMPLE_RATE, subtype="PCM_16")
                row.files.append(path)
                heard = offline(model, audio)
                row.offline.append(text.wer(clip.reference, heard))
                if args.show:
                    print(f"    offline | {clip.name} | {row.kind} {row.level} +{shift} ms: {heard}", flush=True)
            rows.append(row)
    for config in configs:
        env = CONFIGS[config]
        async with LocalStack(gateway_port=0, log_dir=work / "logs", env=env) as stack:
            for row in rows:
                for shift, path in zip(shifts, row.files, strict=True):
                    said, _, lengths = await through_mesh(stack.gateway, path, "fast")
                    row.mesh.setdefault(config, []).append(text.wer(row.clip.reference, " ".join(said)))
                    row.lengths.setdefault(config, []).extend(lengths)
                    if args.show:
                        print(
                            f"    {config} | {row.clip.name} | {row.kind} {row.level} +{shift} ms: {' // '.join(said)}"
                        )
        print(f"  ran {config}", flush=True)
    latencies: dict[str, list[list[float]]] = {config: [] for config in configs} if args.latency else {}
    slowest: dict[str, list[tuple[float, str]]] = {config: [] for config in configs}  # (seconds, which end)
    for round_ in range(args.latency_rounds if args.latency else 0):
        for config in configs:
            async with LocalStack(gateway_port=0, log_dir=work / "logs", env=CONFIGS[config]) as stack:
                measured = []
                for row in rows:
                    if row.snr is not None:
                        continue
                    _, these, _ = await through_mesh(stack.gateway, row.files[0], "realtime")
                    measured += these.values()
                    slowest[config] += [(s, f"{row.clip.name} #{u} round {round_ + 1}") for u, s in these.items()]
            latencies[config].append(measured)
            print(f"  latency round {round_ + 1}, {config}: p95 {p95(measured):.3f} s (n={len(measured)})", flush=True)

    print_report(rows, configs, shifts)
    print()
    for engine, cost in vad_cost(clips).items():
        print(f"VAD classifier cost, {engine}: {cost * 1000:.2f} ms per second of audio per stream")
    if latencies:
        base = configs[0]
        for c, rounds in latencies.items():
            values = [v for measured in rounds for v in measured]
            ratios = [p95(measured) / p95(first) for measured, first in zip(rounds, latencies[base], strict=True)]
            print(
                f"speech end -> final, clean clips in real time, {c}: p50 {statistics.median(values):.3f} s, "
                f"p95 {p95(values):.3f} s (n={len(values)}); p95 / {base}'s: "
                f"{p95(values) / p95([v for m in latencies[base] for v in m]):.2f} pooled, "
                f"per round " + " ".join(f"{r:.2f}" for r in ratios)
            )
            above = sorted(slowest[c], reverse=True)[: max(1, len(values) - int(0.95 * len(values)))]
            print("  the ends at or above its p95: " + "; ".join(f"{s:.3f} s {which}" for s, which in above))
    if args.vad_streams:
        voice = np.concatenate([c.audio for c in clips])
        for ticks in ("spread", "aligned"):
            for engine in ("webrtcvad", "silero"):
                measured = await vad_hop(engine, args.vad_streams, 20.0, voice, aligned=ticks == "aligned")
                print(
                    f"VAD hop, {args.vad_streams} live streams, chunks {ticks}, {engine}: "
                    f"p50 {statistics.median(measured) * 1000:.1f} ms, p95 {p95(measured) * 1000:.1f} ms "
                    f"(n={len(measured)})"
                )


if __name__ == "__main__":
    asyncio.run(main())
