"""Chaos: replicas die while live streams of real speech run through a multi-replica stack.

    .venv/bin/python bench/chaos.py [--streams N] [--trials asr=100,vad=30,llm=30,gateway=30] [--seed 1]

A local stack with two replicas of every service (`voxmesh up --replicas ...`); streams play real speech
(../shared/audio and the bundled sample), file after file, each file one client stream at real-time pace,
with the client library's resume on. Phases, each on the same stack:
1. capacity (unless --streams is given): streams are added (1, 2, 3, 4, 6, 8, ...) for one pass over the
   files each, until one has an error event, an utterance without a final, or a speech end -> final p95
   over --max-p95; the largest count before that is the count every later phase uses.
2. baseline: one pass with no faults at that count: the transcript of every file, for WER.
3. kills, per service: a random replica is SIGKILLed at a random time (every 1.5-4 s) and started again
   at once; each kill is one trial.
4. rolling: every replica of every service in turn gets SIGTERM, drains, stops and is started again.
Per phase it prints: trials, utterances expected (the baseline's count for the files played), finals
delivered, utterances without a final, duplicate finals, error events, WER of the transcripts against the
baseline's, and the time to recover: from the kill to the last stream moved to another replica (the
gateways' "downstream stream replaced" log lines; for a gateway, the client's "the stream resumed").
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import random
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import grpc

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from voxmesh import text  # noqa: E402
from voxmesh.client import Client, StreamOptions  # noqa: E402
from voxmesh.console import percentile  # noqa: E402
from voxmesh.stack import ORDER, LocalStack, parse_replicas  # noqa: E402

FILES = [
    ROOT.parent / "shared" / "audio" / "jfk.flac",
    ROOT.parent / "shared" / "audio" / "alsa_channels.flac",
    ROOT / "samples" / "welcome.flac",
]
CAPACITY_STEPS = (1, 2, 3, 4, 6, 8, 10, 12, 16, 20, 24, 32)
RECOVERY_WINDOW_S = 15.0


@dataclass
class Run:
    """One file streamed once: what came back."""

    file: str
    events: list = field(default_factory=list)
    failure: str = ""  # the call's own error, if the stream could not go on
    end_to_final: list[float] = field(default_factory=list)

    def finals(self) -> dict[int, list[str]]:
        out: dict[int, list[str]] = {}
        for event in self.events:
            if event.type == "final":
                out.setdefault(event.utterance, []).append(event.text)
        return out

    def transcript(self) -> str:
        return " ".join(texts[0] for _, texts in sorted(self.finals().items()))


async def play(target: str, path: Path) -> Run:
    run = Run(path.name)
    ended: dict[int, float] = {}
    try:
        async with Client(target) as client:
            async for event in client.stream_file(path, pace="realtime", options=StreamOptions(partials=False)):
                run.events.append(event)
                now = time.monotonic()
                if event.type == "speech_end":
                    ended[event.utterance] = now
                elif event.type == "final" and event.utterance in ended:
                    run.end_to_final.append(now - ended.pop(event.utterance))
    except grpc.aio.AioRpcError as exc:
        run.failure = f"{exc.code().name}: {exc.details()}"
    except Exception as exc:
        run.failure = f"{type(exc).__name__}: {exc}"
    return run


async def listener(target: str, index: int, stop: asyncio.Event, runs: list[Run], passes: int | None) -> None:
    """Plays the files one after another (starting at a different one per listener) until told to stop."""
    await asyncio.sleep(index * 0.7)  # spread the starts, so utterances do not all end together
    played = 0
    while not stop.is_set() and (passes is None or played < passes * len(FILES)):
        runs.append(await play(target, FILES[(index + played) % len(FILES)]))
        played += 1


async def session(target: str, streams: int, passes: int | None, stop: asyncio.Event | None = None) -> list[Run]:
    runs: list[Run] = []
    stop = stop or asyncio.Event()
    await asyncio.gather(*(listener(target, i, stop, runs, passes) for i in range(streams)))
    return runs


def served(runs: list[Run], max_p95: float) -> tuple[bool, str]:
    latencies = [x for r in runs for x in r.end_to_final]
    errors = sum(1 for r in runs for e in r.events if e.type == "error") + sum(1 for r in runs if r.failure)
    started = sum(len({e.utterance for e in r.events if e.type == "speech_start"}) for r in runs)
    finals = sum(len(r.finals()) for r in runs)
    p95 = percentile(latencies, 95) if latencies else 0.0
    ok = errors == 0 and finals == started and p95 <= max_p95
    return ok, f"errors {errors}, utterances {started}, finals {finals}, speech end -> final p95 {p95:.2f} s"


@dataclass
class Tally:
    trials: int = 0
    expected: int = 0
    finals: int = 0
    missing: int = 0
    duplicates: int = 0
    errors: int = 0
    edits: float = 0.0
    words: int = 0
    recoveries: list[float] = field(default_factory=list)
    quiet_trials: int = 0  # kills of a replica that carried no stream: nothing to recover
    problems: list[str] = field(default_factory=list)  # what went wrong, one line each

    def add(self, runs: list[Run], baseline: dict[str, Run]) -> None:
        for run in runs:
            reference = baseline[run.file]
            expected = len(reference.finals())
            finals = run.finals()
            self.expected += expected
            self.finals += len(finals)
            self.duplicates += sum(len(texts) - 1 for texts in finals.values())
            self.errors += sum(1 for e in run.events if e.type == "error") + (1 if run.failure else 0)
            started = {e.utterance for e in run.events if e.type == "speech_start"}
            self.missing += len(started - set(finals)) + (max(0, expected - len(started)) if run.failure else 0)
            for event in run.events:
                if event.type == "error":
                    self.problems.append(
                        f"{run.file} utterance {event.utterance}: {event.code} at {event.stage}: {event.message}"
                    )
            if run.failure:
                self.problems.append(f"{run.file}: the stream ended: {run.failure}")
            if started - set(finals):
                self.problems.append(f"{run.file}: no final for utterances {sorted(started - set(finals))}")
            words = len(text.words(reference.transcript()))
            self.words += words
            self.edits += text.wer(reference.transcript(), run.transcript()) * words

    def row(self, name: str) -> str:
        wer = self.edits / self.words if self.words else 0.0
        recovery = (
            f"p50 {percentile(self.recoveries, 50) * 1000:.0f} ms, max {max(self.recoveries) * 1000:.0f} ms"
            if self.recoveries
            else "-"
        )
        return (
            f"| {name} | {self.trials} ({self.quiet_trials} on an idle replica) | {self.expected} | {self.finals} "
            f"| {self.missing} | {self.duplicates} | {self.errors} | {wer:.3f} | {recovery} |"
        )


def log_times(stack: LocalStack, message: str) -> list[tuple[float, str]]:
    """(wall time, stage) of each gateway log line with this message."""
    found = []
    for member in stack.replicas_of("gateway"):
        for line in member.log_path.read_text(errors="replace").splitlines():
            if message not in line or not line.startswith("{"):
                continue
            entry = json.loads(line)
            when = datetime.strptime(entry["ts"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp()
            found.append((when, entry.get("stage", "")))
    return found


class ClientResumes(logging.Handler):
    """Collects the client library's "the stream resumed" records, with their wall times."""

    def __init__(self) -> None:
        super().__init__()
        self.times: list[float] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage() == "the stream resumed on a new call":
            self.times.append(record.created)


def recovery(kills: list[tuple[float, str]], moved: list[tuple[float, str]], tally: Tally) -> None:
    for at, service in kills:
        after = [t - at for t, stage in moved if stage == service and 0 <= t - at <= RECOVERY_WINDOW_S]
        nxt = min((k for k, _ in kills if k > at), default=float("inf"))
        after = [d for d in after if at + d < nxt]
        if after:
            tally.recoveries.append(max(after))
        else:
            tally.quiet_trials += 1


async def kills(stack: LocalStack, service: str, trials: int, streams: int, baseline, resumes) -> Tally:
    tally = Tally(trials=trials)
    stop = asyncio.Event()
    runs_task = asyncio.create_task(session(stack.gateway, streams, None, stop))
    done: list[tuple[float, str]] = []
    for _ in range(trials):
        await asyncio.sleep(random.uniform(1.5, 4.0))
        member = random.choice(stack.replicas_of(service))
        done.append((time.time(), service))
        stack.kill(member)
        await stack.restart(member)
    stop.set()
    tally.add(await runs_task, baseline)
    moved = (
        [(t, "gateway") for t in resumes.times]
        if service == "gateway"
        else log_times(stack, "downstream stream replaced")
    )
    recovery(done, moved, tally)
    return tally


async def rolling(stack: LocalStack, streams: int, baseline, resumes) -> Tally:
    tally = Tally()
    stop = asyncio.Event()
    runs_task = asyncio.create_task(session(stack.gateway, streams, None, stop))
    await asyncio.sleep(3.0)
    done: list[tuple[float, str]] = []
    for service in ORDER:
        for member in stack.replicas_of(service):
            done.append((time.time(), service))
            await asyncio.to_thread(stack.terminate, member)
            await stack.restart(member)
            tally.trials += 1
            await asyncio.sleep(1.0)
    stop.set()
    tally.add(await runs_task, baseline)
    recovery(done, [*log_times(stack, "downstream stream replaced"), *((t, "gateway") for t in resumes.times)], tally)
    return tally


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=0, help="live streams (default: measure the capacity first)")
    parser.add_argument("--trials", default="asr=100,vad=30,llm=30,gateway=30", help="kills per service")
    parser.add_argument("--max-p95", type=float, default=2.0, help="capacity: the highest speech end -> final p95, s")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-rolling", action="store_true", help="skip the rolling update")
    args = parser.parse_args()
    random.seed(args.seed)
    trials = {k: int(v) for k, v in (p.split("=") for p in args.trials.split(",") if p)}
    missing = [f for f in FILES if not f.exists()]
    if missing:
        raise SystemExit(f"missing speech files: {', '.join(map(str, missing))}")
    resumes = ClientResumes()
    logging.getLogger("voxmesh.client").addHandler(resumes)
    logging.getLogger("voxmesh.client").setLevel(logging.INFO)

    logs = Path(tempfile.mkdtemp(prefix="voxmesh-chaos-"))
    env = {f"VOXMESH_{name.upper()}_LOG_FORMAT": "json" for name in ORDER}
    env["VOXMESH_GATEWAY_ADMIT_UTILIZATION"] = "2"  # admission off: the bench picks its own stream count
    replicas = parse_replicas("vad=2,asr=2,llm=2,gateway=2")
    print(f"stack: {', '.join(f'{n} x{c}' for n, c in replicas.items())}; logs in {logs}")
    print(f"speech: {', '.join(f.name for f in FILES)}, each file one stream at real-time pace")
    async with LocalStack(gateway_port=0, log_dir=logs, replicas=replicas, env=env) as stack:
        streams = args.streams
        if not streams:
            print(f"\ncapacity: 0 errors, every utterance a final, speech end -> final p95 <= {args.max_p95:g} s")
            for n in CAPACITY_STEPS:
                ok, summary = served(await session(stack.gateway, n, 1), args.max_p95)
                print(f"  {n} streams: {summary}: {'served' if ok else 'NOT served'}", flush=True)
                if not ok:
                    break
                streams = n
            if not streams:
                raise SystemExit("not even one stream is served; see the logs")
        print(f"\nstreams for every phase: {streams}")
        runs = await session(stack.gateway, streams, 1)
        baseline = {}
        for run in runs:
            baseline.setdefault(run.file, run)
        ok, summary = served(runs, float("inf"))
        print(f"baseline (no faults): {summary}", flush=True)

        tallies: dict[str, Tally] = {}
        print(
            "\n| faults | trials | utterances expected | finals delivered | without a final | duplicate finals "
            "| error events | WER vs no faults | time to recover |"
        )
        print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        for service in ORDER:
            if trials.get(service):
                tallies[f"SIGKILL {service}"] = await kills(stack, service, trials[service], streams, baseline, resumes)
                print(tallies[f"SIGKILL {service}"].row(f"SIGKILL {service}"), flush=True)
        if not args.no_rolling:
            resumes.times.clear()
            tallies["rolling SIGTERM"] = await rolling(stack, streams, baseline, resumes)
            print(tallies["rolling SIGTERM"].row("rolling SIGTERM, every replica"), flush=True)
        for name, tally in tallies.items():
            for line in tally.problems:
                print(f"{name}: {line}")


if __name__ == "__main__":
    asyncio.run(main())
