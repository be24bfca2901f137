"""Overload and abuse: what careless or hostile clients do to live streams, and how far admission goes.

    .venv/bin/python bench/overload.py [--ramp-max 24] [--ramp-hold-s 60]

A local stack (one replica of each service, the embedded engines) and real speech (../shared/audio and the
bundled sample). Phases, in one run:
1. alone: one live stream of the speech files, at real-time pace: its speech end -> final p95 is the yardstick.
2. a 6-minute recording through Transcribe on the idle mesh: utterances, finals, shed, deadline failures.
3. the mix: a live stream beside a flooding client (two minutes of audio sent at once, declared live, its
   events read only at the end), a 6-minute Transcribe and an idle client (a config, then nothing).
4. admission: live streams are added one per second until the gateway refuses one; the admitted ones go on
   for --ramp-hold-s; the refusals' status and retry hint are checked.
Per class it prints: finals delivered, shed (error events), speech end -> final p50/p95, and the gateway's
peak memory (its VmHWM, and the highest VmRSS seen during the phase).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import numpy as np
import soundfile
from google.rpc import error_details_pb2
from grpc_status import rpc_status

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from voxmesh import audio  # noqa: E402
from voxmesh.client import Client, StreamOptions  # noqa: E402
from voxmesh.console import percentile  # noqa: E402
from voxmesh.stack import LocalStack  # noqa: E402
from voxmesh.v1 import transcription_pb2 as pb  # noqa: E402
from voxmesh.v1 import transcription_pb2_grpc  # noqa: E402

FILES = [
    ROOT.parent / "shared" / "audio" / "jfk.flac",
    ROOT.parent / "shared" / "audio" / "alsa_channels.flac",
    ROOT / "samples" / "welcome.flac",
]


@dataclass
class Tally:
    finals: int = 0
    shed: int = 0
    deadline: int = 0
    latencies: list[float] = field(default_factory=list)
    refusals: list[str] = field(default_factory=list)

    def add_events(self, events_with_times) -> None:
        ended = {}
        for at, event in events_with_times:
            if event.type == "speech_end":
                ended[event.utterance] = at
            elif event.type == "final":
                self.finals += 1
                if event.utterance in ended:
                    self.latencies.append(at - ended.pop(event.utterance))
            elif event.type == "error":
                self.shed += 1
                self.deadline += event.code == "DEADLINE_EXCEEDED"

    def row(self, name: str, memory: str) -> str:
        p50 = f"{percentile(self.latencies, 50):.2f} s" if self.latencies else "-"
        p95 = f"{percentile(self.latencies, 95):.2f} s" if self.latencies else "-"
        return f"| {name} | {self.finals} | {self.shed} | {p50} | {p95} | {memory} |"


def playlist_pcm(seconds: float) -> bytes:
    """The speech files, end to end and repeated, as 16 kHz mono LINEAR16 of about `seconds`."""
    pieces, total = [], 0
    while total < seconds * 32000:
        for path in FILES:
            pcm = audio.to_internal(*audio.read_file(path))
            pieces.append(pcm)
            total += len(pcm)
    return b"".join(pieces)[: int(seconds * 16000) * 2]


def wav_bytes(pcm: bytes) -> bytes:
    out = io.BytesIO()
    soundfile.write(out, np.frombuffer(pcm, "<i2"), 16000, format="WAV", subtype="PCM_16")
    return out.getvalue()


class Memory:
    """The gateway process's memory, sampled while a phase runs."""

    def __init__(self, pid: int):
        self.pid = pid
        self.peak_rss = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _read(self, key: str) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(key):
                return int(line.split()[1]) * 1024
        return 0

    def __enter__(self) -> Memory:
        self.peak_rss = 0
        self._stop.clear()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.05):
            self.peak_rss = max(self.peak_rss, self._read("VmRSS"))

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def summary(self) -> str:
        return f"peak RSS {self.peak_rss / 2**20:.0f} MiB (VmHWM {self._read('VmHWM') / 2**20:.0f} MiB)"


async def live(target: str, pcm: bytes, tally: Tally) -> None:
    async def paced():
        started = time.monotonic()
        for offset in range(0, len(pcm), 3200):
            await asyncio.sleep(max(0.0, started + offset / 32000 - time.monotonic()))
            yield pcm[offset : offset + 3200]

    timed = []
    try:
        async with Client(target) as client:
            async for event in client.stream(paced(), options=StreamOptions(post_processing=False, resume=False)):
                timed.append((time.monotonic(), event))
    except grpc.aio.AioRpcError as exc:
        tally.refusals.append(_refusal(exc))
    tally.add_events(timed)


def _refusal(exc: grpc.aio.AioRpcError) -> str:
    status = rpc_status.from_call(exc)
    retry = error_details_pb2.RetryInfo()
    hint = ""
    if status is not None and status.details and status.details[0].Unpack(retry):
        hint = f", RetryInfo {retry.retry_delay.seconds + retry.retry_delay.nanos / 1e9:g} s"
    return f"{exc.code().name}{hint}: {exc.details()}"


async def transcribe(target: str, content: bytes, tally: Tally) -> float:
    started = time.monotonic()
    async with grpc.aio.insecure_channel(target, options=[("grpc.max_send_message_length", 64 << 20)]) as channel:
        reply = await transcription_pb2_grpc.TranscriptionStub(channel).Transcribe(
            pb.TranscribeRequest(content=content)
        )
    for utterance in reply.utterances:
        if utterance.HasField("error"):
            tally.shed += 1
            tally.deadline += utterance.error.code == "DEADLINE_EXCEEDED"
        else:
            tally.finals += 1
    return time.monotonic() - started


async def flooder(target: str, pcm: bytes, tally: Tally) -> float:
    """Audio sent as fast as the gateway takes it, declared live; its events are read only once it is all sent."""
    started = time.monotonic()
    async with grpc.aio.insecure_channel(target) as channel:
        call = transcription_pb2_grpc.TranscriptionStub(channel).StreamingTranscribe()
        await call.write(
            pb.StreamingTranscribeRequest(
                config=pb.StreamingConfig(
                    format=pb.AudioFormat(encoding=pb.AudioFormat.LINEAR16, sample_rate_hz=16000, channels=1)
                )
            )
        )
        sent = 0
        try:
            for offset in range(0, len(pcm), 32000):
                await call.write(pb.StreamingTranscribeRequest(audio=pcm[offset : offset + 32000]))
                sent += 1
            await call.done_writing()
            events = [e async for e in call]  # read only once everything is sent
        except grpc.aio.AioRpcError as exc:
            tally.refusals.append(_refusal(exc))
            events = []
    for event in events:
        kind = event.WhichOneof("event")
        tally.finals += kind == "final"
        tally.shed += kind == "error"
    return time.monotonic() - started


async def idle(target: str, tally: Tally) -> float:
    started = time.monotonic()
    async with grpc.aio.insecure_channel(target) as channel:
        call = transcription_pb2_grpc.TranscriptionStub(channel).StreamingTranscribe()
        await call.write(
            pb.StreamingTranscribeRequest(
                config=pb.StreamingConfig(
                    format=pb.AudioFormat(encoding=pb.AudioFormat.LINEAR16, sample_rate_hz=16000, channels=1)
                )
            )
        )
        try:
            [e async for e in call]
        except grpc.aio.AioRpcError as exc:
            tally.refusals.append(f"{exc.code().name}: {exc.details()}")
    return time.monotonic() - started


def header() -> None:
    print("| class | finals | shed | speech end -> final p50 | p95 | gateway memory |")
    print("| --- | --- | --- | --- | --- | --- |")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ramp-max", type=int, default=24, help="the most live streams the admission phase adds")
    parser.add_argument("--ramp-hold-s", type=float, default=60.0, help="how long the admitted streams run")
    args = parser.parse_args()
    missing = [f for f in FILES if not f.exists()]
    if missing:
        raise SystemExit(f"missing speech files: {', '.join(map(str, missing))}")
    speech = playlist_pcm(62.0)  # one pass over the files
    recording = wav_bytes(playlist_pcm(360.0))
    flood = playlist_pcm(120.0)
    logs = Path(tempfile.mkdtemp(prefix="voxmesh-overload-"))
    async with LocalStack(gateway_port=0, log_dir=logs) as stack:
        target = stack.gateway
        memory = Memory(stack.replicas_of("gateway")[0].process.pid)
        print(f"stack: one replica of each service, embedded engines; logs in {logs}\n")
        header()

        alone = Tally()
        with memory:
            await live(target, speech, alone)
        print(alone.row("1. one live stream alone", memory.summary()), flush=True)

        recorded = Tally()
        with memory:
            took = await transcribe(target, recording, recorded)
        print(
            recorded.row(
                f"2. a 6-minute Transcribe, idle mesh ({took:.0f} s; {recorded.deadline} deadline failures)",
                memory.summary(),
            ),
            flush=True,
        )

        beside, flooded, long_file, silent = Tally(), Tally(), Tally(), Tally()
        with memory:
            results = await asyncio.gather(
                live(target, speech, beside),
                flooder(target, flood, flooded),
                transcribe(target, recording, long_file),
                idle(target, silent),
            )
        print(beside.row("3. a live stream beside the three below", memory.summary()))
        print(
            flooded.row(
                f"3. flooding client: 120 s of audio sent at once, declared live, unread ({results[1]:.0f} s)", ""
            )
        )
        print(
            long_file.row(f"3. a 6-minute Transcribe ({results[2]:.0f} s; {long_file.deadline} deadline failures)", "")
        )
        print(silent.row(f"3. idle client: cut after {results[3]:.0f} s: {'; '.join(silent.refusals)}", ""))
        for tally in (beside, flooded):
            for refusal in tally.refusals:
                print(f"   refused: {refusal}")
        p95_alone = percentile(alone.latencies, 95)
        p95_beside = percentile(beside.latencies, 95) if beside.latencies else float("inf")
        print(
            f"\nlive p95 beside the flood {p95_beside:.2f} s vs alone {p95_alone:.2f} s: "
            f"{p95_beside / p95_alone:.2f}x (target <= 2x)",
            flush=True,
        )

        print(f"\n4. admission: a live stream added every second, up to {args.ramp_max}")
        streams: list[tuple[Tally, asyncio.Task]] = []
        refused_at = None
        with memory:
            for n in range(1, args.ramp_max + 1):
                tally = Tally()
                task = asyncio.create_task(live(target, (speech * 2)[: int(args.ramp_hold_s * 32000)], tally))
                await asyncio.sleep(1.0)
                if tally.refusals:
                    refused_at = n
                    print(f"   stream {n} refused: {tally.refusals[0]}")
                    await task
                    break
                streams.append((tally, task))
            await asyncio.gather(*(task for _, task in streams))
        admitted = [tally for tally, _ in streams]
        worst = max((percentile(t.latencies, 95) for t in admitted if t.latencies), default=0.0)
        print(
            f"   refusals began at stream {refused_at}"
            if refused_at
            else f"   no refusal up to {args.ramp_max} streams"
        )
        print(
            f"   admitted {len(admitted)}: finals {sum(t.finals for t in admitted)}, shed "
            f"{sum(t.shed for t in admitted)}, worst stream p95 {worst:.2f} s = {worst / p95_alone:.2f}x the "
            f"single-stream p95 (target <= 2x); gateway {memory.summary()}"
        )


if __name__ == "__main__":
    asyncio.run(main())
