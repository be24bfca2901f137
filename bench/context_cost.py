"""What a stream's context costs the whisper engine per final, apart from the mesh.

    .venv/bin/python bench/context_cost.py [--repeats 5] [--no-synthetic] [--seed 1]

The clean clips of bench/fidelity.py (human, and synthetic unless --no-synthetic) are cut by the VAD's own
segmenter with its default settings. Each utterance's final is asked for as a Recognize stream's session asks
for it (the session's own request: the stream's context and lead, from the finals before it), and again with
no context, on the engine alone in this process; each is timed --repeats times and the median kept. The
ASR's settings come from the environment as the service's do (VOXMESH_ASR_CONTEXT_TOKENS,
VOXMESH_ASR_CONTEXT_AUDIO_S, ...).

Per final it prints its length, whether the engine heard a lead (the utterances before it, their text ending
the prompt), how many decodes the engine ran for it (more than one: an answer after the lead that said the
lead again, or an answer decoded again as too sparse), and both times; then p50/p95 of each and their
ratio.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fidelity_clips import human_clips, synthetic_clips  # noqa: E402

from voxmesh import SAMPLE_RATE  # noqa: E402
from voxmesh.audio import float_to_pcm  # noqa: E402
from voxmesh.services.asr.redecode_session import RedecodeSession  # noqa: E402
from voxmesh.services.asr.service import context_bounds  # noqa: E402
from voxmesh.services.vad.segmenter import SpeechAudio, SpeechEnded, SpeechStarted  # noqa: E402
from voxmesh.services.vad.service import VadServicer  # noqa: E402
from voxmesh.settings import AsrSettings, VadSettings  # noqa: E402

CHUNK = SAMPLE_RATE // 10 * 2  # 100 ms of 16-bit samples, as a live client sends them


def utterances(segmenter, audio: np.ndarray) -> list[bytes]:
    """The audio of each utterance the segmenter finds, in order."""
    pcm, events, found = float_to_pcm(audio), [], []
    for offset in range(0, len(pcm), CHUNK):
        events += segmenter.push(pcm[offset : offset + CHUNK])
    events += segmenter.flush()
    current = bytearray()
    for event in events:
        if isinstance(event, SpeechStarted):
            current = bytearray()
        elif isinstance(event, SpeechAudio):
            current += event.pcm
        elif isinstance(event, SpeechEnded):
            found.append(bytes(current))
    return found


def timed(engine, request, repeats: int) -> tuple[float, str, int]:
    """Median seconds of `repeats` transcriptions of one request, its answer, and the decodes each ran (after
    the lead, and alone)."""
    decodes: list[tuple] = []
    for name in ("_decode", "_together"):
        run = getattr(engine, name)
        setattr(engine, name, lambda *args, run=run: decodes.append(args) or run(*args))
    try:
        seconds = []
        for _ in range(repeats):
            began = time.perf_counter()
            answer = engine.transcribe([request])[0].text
            seconds.append(time.perf_counter() - began)
    finally:
        del engine._decode, engine._together  # the class's methods again
    return statistics.median(seconds), answer, len(decodes) // repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-synthetic", action="store_true")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    from voxmesh.services.asr.engines.whisper import WhisperEngine

    settings = AsrSettings()
    engine = WhisperEngine(settings)
    engine.warmup()
    vad = VadServicer(VadSettings())
    clips = human_clips() + ([] if args.no_synthetic else synthetic_clips(args.seed))
    print(f"whisper, context_tokens {settings.context_tokens}, context_audio_s {settings.context_audio_s}")
    print("| clip | utterance | seconds | lead heard | decodes | with context ms | no context ms |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    with_context, without = [], []
    context_chars, lead_samples = context_bounds(settings, engine.capabilities)  # as the ASR service's
    for clip in clips:
        session = RedecodeSession(
            None,  # no scheduler and no emit: only the session's requests and memory are used
            None,
            engine_name=engine.name,
            language="en",
            partials=False,
            partial_interval_s=1.0,
            context_chars=context_chars,
            lead_samples=lead_samples,
            max_utterance_s=settings.max_utterance_s,
        )
        for number, pcm in enumerate(utterances(vad.segmenter(), clip.audio), start=1):
            utterance = session._open_utterance(number)
            utterance.audio += pcm
            request = session._request(utterance, final=True)
            lead = engine._plan(request).lead is not None
            seconds, answer, decodes = timed(engine, request, args.repeats)
            alone, _, _ = timed(engine, replace(request, context="", lead=()), args.repeats)
            session._remember(answer, pcm)
            with_context.append(seconds)
            without.append(alone)
            print(
                f"| {clip.name} | {number} | {len(request.audio) / SAMPLE_RATE:.2f} | {'yes' if lead else 'no'} "
                f"| {decodes} | {seconds * 1000:.0f} | {alone * 1000:.0f} |",
                flush=True,
            )
    for name, values in (("with context", with_context), ("no context", without)):
        print(
            f"{name}: p50 {np.percentile(values, 50) * 1000:.0f} ms, p95 {np.percentile(values, 95) * 1000:.0f} ms, "
            f"mean {np.mean(values) * 1000:.0f} ms (n={len(values)})"
        )
    print(
        f"with context / no context: p95 {np.percentile(with_context, 95) / np.percentile(without, 95):.2f}, "
        f"mean {np.mean(with_context) / np.mean(without):.2f}"
    )


if __name__ == "__main__":
    main()
