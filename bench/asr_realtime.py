"""What lockstep batching buys the voxtral-realtime engine: N streams in one cohort against N streams
stepped one by one, per 80 ms token step.

    .venv/bin/python bench/asr_realtime.py [--streams 1,2,4,8,16,32] [--steps 40]

With CUDA the model is Voxtral-Mini-4B-Realtime-2602 built from its config (`VoxtralRealtimeConfig()`)
with random weights, in bf16: the compute is the real model's, no download. Without CUDA it is a reduced
config (4 layers, hidden 256), which says nothing about the real model. For each N it prints the time of
one step for the whole cohort (one batched forward) and for N separate forwards (streams that started at
different times), and how many such streams one device keeps in real time (a step must take < 80 ms).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.tiny_models import build_voxtral_realtime
from voxmesh.services.asr.engines.voxtral_realtime import VoxtralRealtimeEngine
from voxmesh.settings import AsrSettings

STEP_S = 0.08


def model_dir(full: bool) -> Path:
    out = Path(tempfile.mkdtemp(prefix="voxtral-realtime-bench-"))
    if full:
        from transformers import VoxtralRealtimeConfig, VoxtralRealtimeForConditionalGeneration

        build_voxtral_realtime(out)  # processor and tokenizer files; the tiny weights are replaced below
        with torch.device("cuda"):
            model = VoxtralRealtimeForConditionalGeneration._from_config(VoxtralRealtimeConfig(), dtype=torch.bfloat16)
        model.save_pretrained(out)  # about 9 GB: the engine loads it as it would a downloaded checkpoint
        del model
        return out
    return build_voxtral_realtime(out, hidden=256, layers=4)


def timed(fn, *args) -> float:
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    started = time.perf_counter()
    fn(*args)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", default="1,2,4,8,16,32")
    parser.add_argument("--steps", type=int, default=40)
    args = parser.parse_args()
    full = torch.cuda.is_available()
    engine = VoxtralRealtimeEngine(AsrSettings(engine="voxtral-realtime", model=str(model_dir(full)), device="auto"))
    device = torch.cuda.get_device_name() if full else "CPU (reduced config: not the real model)"
    print(f"device: {device}; torch {torch.__version__}; delay {engine.delay_tokens} tokens; {args.steps} steps")
    print()
    print("| streams | cohort step | separate steps | speed-up | streams kept in real time |")
    print("| --- | --- | --- | --- | --- |")
    rng = np.random.default_rng(0)
    for n in (int(x) for x in args.streams.split(",")):
        firsts = [rng.normal(0, 0.1, engine.first_samples).astype(np.float32) for _ in range(n)]
        window = rng.normal(0, 0.1, engine.window_samples).astype(np.float32)
        cohort, _ = engine.start(firsts)
        together = sorted(timed(engine.step, cohort, [window] * n) for _ in range(args.steps))[args.steps // 2]
        singles = [engine.start([f])[0] for f in firsts]
        apart = sorted(sum(timed(engine.step, single, [window]) for single in singles) for _ in range(args.steps))[
            args.steps // 2
        ]
        kept = n if together < STEP_S else 0
        print(
            f"| {n} | {together * 1000:.1f} ms | {apart * 1000:.1f} ms | {apart / together:.1f}x | "
            f"{'all ' + str(kept) if kept else 'none (step > 80 ms)'} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
