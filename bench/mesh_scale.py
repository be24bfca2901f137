"""The mesh at scale, apart from the model: what the four services add to an engine of fixed cost.

    .venv/bin/python bench/mesh_scale.py [--streams 1,50,150,300] [--engine-ms 20] [--seconds 30]
                                         [--spread-s 5] [--aligned] [--same-speech] [--seed 1]
                                         [--per-process 50]
                                         [--no-relay] [--profile] [--gc-pause] [--env KEY=VALUE ...]

The real stack (gateway, VAD, ASR servicer and scheduler, LLM with its rule-based engine), each its own
process, except that the ASR's engine sleeps --engine-ms per batch (bench/sleep_asr.py injects it). N
clients stream real speech (../shared/audio, looped to --seconds) at real-time pace in 100 ms chunks,
from one load-generator process per --per-process streams. Each starts at a random moment within --spread-s
(seeded by --seed, printed), as independent live clients do, so their 100 ms ticks fall at random phases.
--aligned snaps the starts to whole chunks instead: every stream's chunk then arrives at the same instant,
the worst case, which no live traffic makes. Each stream also starts at a random point of the speech (seeded),
so that, as independent speakers' do, their utterances end at independent moments; --same-speech has every
stream say it from its start instead, so the streams' ends of each utterance all fall within --spread-s and
meet the engine busy with each other's batches more often.

Per final, at the client: mesh overhead = the final's arrival - the moment the client sent the audio
through the utterance's end offset (so the VAD's and every hop's delay counts) - the engine's compute time.
The ASR says how much of its queue wait the engine was computing other requests (engine_busy_wait_s): the
wait behind other streams' batches, the engine's contention, reported apart. Speech end is the VAD's
decision, which waits `speech_end_ms` of silence by design; that wait is in the offset, not the overhead.

In the same run, the same N streams go through a minimal two-hop gRPC relay (front process -> echo
process -> back), driven the same way: each chunk's round trip. If the relay's p99 is not below the mesh's,
the load generator is what saturates first.

It prints, per N: overhead p50/p99, p99 without the busy wait, the busy wait p99, finals delivered of
speech ends seen, CPU ms per stream-second of audio per service and for the load generators, and the
relay's p50/p99, and below the row the VAD's messages per stream-second (the chunks it read, from
voxmesh_vad_chunk_processing_seconds, and its answers by kind, voxmesh_vad_answers_total), each
service's context switches and page faults per stream-second (/proc: every time one of its threads slept
or was put off the CPU; every page of memory touched for the first time since it was mapped), and where
the mean overhead goes, from the gateway's and the ASR's histograms (the VAD's hop, the gateway's own speech
end -> final less compute, and of that the ASR's hop less compute and busy wait), and the share of finals
that waited behind other streams' batches with the overhead's p50 and p90 without that wait (the engine
takes a fixed time per batch, so a final that meets it busy waits up to that time: once a third of the
finals wait, the p50 with the wait is about the p75 without it). Run it with nothing else on the machine.

--profile samples each service with py-spy (`pip install '.[bench]'`) while the streams run, and prints
each one's top functions by own time and by time inside them (the first 15 s after the starts, at 100
samples a second; the raw stacks stay in the logs folder).

--gc-pause has each service run a full garbage collection halfway through the streams, timed on the thread
of its event loop (bench/gc_pause), and prints how long each stopped its streams: as it runs (start-up's
objects frozen out of the collector's sight, voxmesh/runtime.py) and with them back in sight, as before.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import signal
import sys
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from proc_stats import cpu_seconds, usage  # noqa: E402
from relay import Relay  # noqa: E402
from scale_load import CHUNK_S, drive, speech_starts, start_delays  # noqa: E402
from scale_profile import profile  # noqa: E402

from voxmesh import SAMPLE_RATE, SAMPLE_WIDTH  # noqa: E402
from voxmesh.audio import read_file, to_internal  # noqa: E402
from voxmesh.stack import LocalStack, Member  # noqa: E402

SHARED = ROOT.parent / "shared" / "audio"


@dataclass
class ScaleStack(LocalStack):
    """The local stack, its ASR running the sleeping engine."""

    engine_ms: float = 20.0

    def _command(self, member: Member) -> list[str]:
        command = super()._command(member)
        if member.name != "asr":
            return command
        flags = command[command.index("asr") + 1 :]
        return [sys.executable, str(ROOT / "bench" / "sleep_asr.py"), "--engine-ms", str(self.engine_ms), *flags]


def speech(seconds: float) -> bytes:
    """Real human speech from ../shared/audio, 16 kHz LINEAR16, looped to `seconds`."""
    pieces = [to_internal(*read_file(path)) for path in sorted(SHARED.glob("*.flac"))]
    if not pieces:
        raise SystemExit(f"no speech in {SHARED}")
    one = b"".join(pieces)
    size = int(seconds * SAMPLE_RATE) * SAMPLE_WIDTH
    return (one * math.ceil(size / len(one)))[:size]


# ---- garbage collection ------------------------------------------------------------------------------------


GC_PAUSE = ROOT / "bench" / "gc_pause"  # its sitecustomize times a full collection on SIGUSR1


def gc_pause_env(folder: Path) -> dict[str, str]:
    """The services' environment for `--gc-pause`: bench/gc_pause first on their path, its log folder."""
    folder.mkdir(parents=True, exist_ok=True)
    path = os.pathsep.join(p for p in (str(GC_PAUSE), str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return {"PYTHONPATH": path, "VOXMESH_BENCH_GC_LOG": str(folder)}


async def gc_pauses(stack: LocalStack, folder: Path, after_s: float) -> str:
    """After `after_s`, each service runs a full collection, timed (bench/gc_pause/sitecustomize.py): the
    line that says how long each stopped its streams, frozen as the service runs and unfrozen as before."""
    await asyncio.sleep(after_s)
    parts = []
    for member in stack.members:  # one at a time: together they would take each other's cores
        record = folder / str(member.process.pid)
        os.kill(member.process.pid, signal.SIGUSR1)
        for _ in range(50):
            await asyncio.sleep(0.1)
            if record.exists():
                break
        else:
            parts.append(f"{member.name} did not answer")
            continue
        pause = json.loads(record.read_text())
        now, before = pause["as_it_runs"], pause["unfrozen"]
        parts.append(
            f"{member.name} {now['seconds'] * 1000:.1f} ms ({now['cpu_seconds'] * 1000:.1f} of CPU) over "
            f"{now['walked']:,} objects, with start-up's {before['seconds'] * 1000:.1f} ms "
            f"({before['cpu_seconds'] * 1000:.1f}) over {before['walked']:,}"
        )
    return "a full garbage collection mid-run stops " + "; ".join(parts)


# ---- report ------------------------------------------------------------------------------------------------


def scrape(metrics_url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a service's /metrics, by name and labels."""
    body = urllib.request.urlopen(metrics_url, timeout=5).read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(body)
        for sample in family.samples
    }


def vad_exchange(metrics_url: str, stream_seconds: float) -> str:
    """The VAD's messages per stream-second, from its /metrics: the chunks it read and its answers by kind."""
    samples = scrape(metrics_url)
    chunks = samples.get(("voxmesh_vad_chunk_processing_seconds_count", ()), 0.0)
    answers = {
        dict(labels)["kind"]: value for (name, labels), value in samples.items() if name == "voxmesh_vad_answers_total"
    }
    kinds = ", ".join(f"{kind} {count / stream_seconds:.2f}" for kind, count in sorted(answers.items()))
    return (
        f"VAD messages per stream-second: chunks read {chunks / stream_seconds:.2f}, "
        f"answers {sum(answers.values()) / stream_seconds:.2f} ({kinds})"
    )


def mean_of(samples: dict, histogram: str, **labels: str) -> float:
    key = tuple(sorted(labels.items()))
    count = samples.get((f"{histogram}_count", key), 0.0)
    return samples.get((f"{histogram}_sum", key), 0.0) / count if count else float("nan")


def overhead_parts(gateway_url: str, asr_url: str, overheads: list[float]) -> str:
    """Where the mean overhead at the client goes, from the services' own histograms (means, so the parts
    add up): the VAD's hop, the gateway from the VAD's end answer to the final (the ASR's hop less the
    engine's compute and the wait behind other batches within it), and the rest: the client's two legs and
    the gateway passing the end's chunk on."""
    gateway, asr = scrape(gateway_url), scrape(asr_url)
    at_client = sum(overheads) / len(overheads) if overheads else float("nan")
    vad_hop = mean_of(gateway, "voxmesh_gateway_hop_seconds", hop="vad")
    at_gateway = mean_of(gateway, "voxmesh_gateway_mesh_overhead_seconds")
    asr_hop = mean_of(gateway, "voxmesh_gateway_hop_seconds", hop="asr")
    compute = mean_of(asr, "voxmesh_asr_compute_seconds", kind="final")
    busy = mean_of(asr, "voxmesh_asr_busy_wait_seconds", kind="final")
    return (
        f"mean overhead at the client {ms(at_client)} ms: VAD hop {ms(vad_hop)}, speech end at the gateway -> "
        f"final there {ms(at_gateway)} (of it the ASR's hop less compute and busy wait "
        f"{ms(asr_hop - compute - busy)}), the rest {ms(at_client - vad_hop - at_gateway)} (client legs and "
        "the gateway passing the chunk on)"
    )


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def ms(value: float) -> str:
    return f"{value * 1000:.1f}"


async def one_count(streams: int, args, pcm: bytes, work: Path) -> str:
    seconds = streams * len(pcm) / SAMPLE_WIDTH / SAMPLE_RATE  # stream-seconds of audio
    # The mesh is measured, not admission: admit by a count above the run's streams (admission has its tests
    # and bench/overload.py), and let the ASR queue hold every stream's final.
    env = {
        "VOXMESH_GATEWAY_ADMIT_UTILIZATION": "2",
        "VOXMESH_GATEWAY_MAX_STREAMS": str(streams + 16),
        "VOXMESH_ASR_QUEUE_SIZE": str(max(64, streams * 2)),
    }
    gc_folder = work / f"gc-{streams}"
    if args.gc_pause:
        env.update(gc_pause_env(gc_folder))
    env.update(item.split("=", 1) for item in args.env)
    delays = start_delays(streams, args.spread_s, args.aligned, args.seed)
    starts = speech_starts(streams, len(pcm) // SAMPLE_WIDTH, args.same_speech, args.seed)
    stack = ScaleStack(gateway_port=0, log_dir=work / f"logs-{streams}", env=env, engine_ms=args.engine_ms)
    async with stack:
        before = {m.name: usage(m.process.pid) for m in stack.members}
        driving = asyncio.create_task(
            asyncio.to_thread(drive, stack.gateway, "mesh", delays, starts, args.per_process, pcm)
        )
        pausing = None
        if args.gc_pause:
            pausing = asyncio.create_task(gc_pauses(stack, gc_folder, args.spread_s + args.seconds / 2))
        profiles = {}
        if args.profile:
            await asyncio.sleep(args.spread_s + 1)
            profiles = await profile(stack, work / f"profile-{streams}", min(15.0, args.seconds - 2))
        results, generator_cpu = await driving
        collection = await pausing if pausing is not None else ""
        # per service: CPU seconds, context switches, page faults over the run
        spent = {
            m.name: [now - then for now, then in zip(usage(m.process.pid), before[m.name], strict=True)]
            for m in stack.members
        }
        overheads = [o for r in results for o in r.overheads]
        vad_messages = vad_exchange(stack.metrics_url("vad"), seconds)
        parts = overhead_parts(stack.metrics_url("gateway"), stack.metrics_url("asr"), overheads)
    busy = [b for r in results for b in r.busy_waits]
    without_busy = [o - b for r in results for o, b in zip(r.overheads, r.busy_waits, strict=True)]
    ends = sum(r.ends for r in results)
    finals = sum(r.finals for r in results)
    errors = [e for r in results for e in r.errors]
    refused = [r.refused for r in results if r.refused]
    relay = ""
    if not args.no_relay:
        relay_server = Relay()
        try:
            relay_results, relay_generator_cpu = await asyncio.to_thread(
                drive, relay_server.target, "relay", delays, starts, args.per_process, pcm
            )
            round_trips = [o for r in relay_results for o in r.overheads]
            generators, relays = (
                relay_generator_cpu / seconds * 1000,
                sum(cpu_seconds(pid) for pid in relay_server.pids) / seconds * 1000,
            )
            relay = (
                f"{ms(pct(round_trips, 0.5))} / {ms(pct(round_trips, 0.99))} ms "
                f"(CPU ms per stream-second: generators {generators:.2f}, relay {relays:.2f})"
            )
        finally:
            relay_server.stop()
    services = ("gateway", "vad", "asr", "llm")
    per_second = " / ".join(f"{spent[name][0] / seconds * 1000:.2f}" for name in services)
    generators = generator_cpu / seconds * 1000
    row = (
        f"| {streams} | {ms(pct(overheads, 0.5))} | {ms(pct(overheads, 0.99))} | {ms(pct(without_busy, 0.99))} "
        f"| {ms(pct(busy, 0.99))} | {finals} of {ends} | {per_second} / {generators:.2f} | {relay} |"
    )
    print(f"    {streams} streams: {vad_messages}", flush=True)
    if collection:
        print(f"    {streams} streams: {collection}", flush=True)
    print(f"    {streams} streams: {parts}", flush=True)
    if busy:
        waited = sum(1 for b in busy if b > 0.0005) / len(busy)
        print(
            f"    {streams} streams: {waited:.0%} of finals waited behind other streams' batches; overhead without "
            f"that wait p50 {ms(pct(without_busy, 0.5))} ms, p90 {ms(pct(without_busy, 0.9))} ms",
            flush=True,
        )
    switches = " / ".join(f"{spent[name][1] / seconds:.1f}" for name in services)
    faults = " / ".join(f"{spent[name][2] / seconds:.1f}" for name in services)
    print(
        f"    {streams} streams: per stream-second, gateway / vad / asr / llm: context switches {switches}, "
        f"page faults {faults}",
        flush=True,
    )
    for problem in (errors[:3], refused[:3]):
        for line in problem:
            print(f"    {streams} streams: {line}", flush=True)
    if errors or refused:
        print(f"    {streams} streams: {len(errors)} utterance errors, {len(refused)} streams refused or broken")
    for name, summary in profiles.items():
        print(f"\n    profile of the {name} at {streams} streams ({summary[0]} samples):")
        for line in summary[1]:
            print(f"      {line}")
    return row


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", default="1,50,150,300")
    parser.add_argument("--engine-ms", type=float, default=20.0)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--spread-s", type=float, default=5.0)
    parser.add_argument("--aligned", action="store_true", help="every stream's ticks at the same instant")
    parser.add_argument("--same-speech", action="store_true", help="every stream says the speech from its start")
    parser.add_argument("--seed", type=int, default=1, help="of the random starts")
    parser.add_argument("--per-process", type=int, default=50)
    parser.add_argument("--no-relay", action="store_true")
    parser.add_argument("--env", action="append", default=[], help="KEY=VALUE for every service (repeatable)")
    parser.add_argument("--profile", action="store_true", help="py-spy each service while the streams run")
    parser.add_argument(
        "--gc-pause", action="store_true", help="time a full garbage collection in each service mid-run"
    )
    args = parser.parse_args()
    pcm = speech(args.seconds)
    work = Path(tempfile.mkdtemp(prefix="mesh-scale-"))
    print(
        f"engine: sleeps {args.engine_ms:g} ms per batch; streams of {args.seconds:g} s of real speech, "
        f"real time, {CHUNK_S * 1000:g} ms chunks, starts "
        f"{'snapped to whole chunks' if args.aligned else f'at random (seed {args.seed})'} over {args.spread_s:g} s, "
        f"{'each from the start of the speech' if args.same_speech else 'each from a random point of the speech'}, "
        f"{args.per_process} streams per load-generator process; logs in {work}"
    )
    print()
    print(
        "| live streams | overhead p50 ms | p99 ms | p99 without busy wait ms | busy wait p99 ms "
        "| finals of speech ends | CPU ms per stream-second: gateway / vad / asr / llm / load generators "
        "| relay round trip p50 / p99 |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for streams in (int(n) for n in args.streams.split(",")):
        print(await one_count(streams, args, pcm, work), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
