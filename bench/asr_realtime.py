"""What batching across positions buys the voxtral-realtime engine: one round for N streams that started
at different times (one forward, every row at its own position) against N separate forwards.

    .venv/bin/python bench/asr_realtime.py [--streams 1,2,4,8,16,32] [--steps 40]

With CUDA the model is Voxtral-Mini-4B-Realtime-2602 built from its config (`VoxtralRealtimeConfig()`)
with random weights, in bf16: the compute is the real model's, no download. Without CUDA it is a reduced
config (4 layers, hidden 256), which says nothing about the real model. For each N, stream i starts
`2 i` steps after the first (staggered starts, so the rows sit at N different positions), and it prints the
median time of one round (`engine.step` of all N: stacking their caches, the forward, handing the grown
caches back), of a round of N streams that started together (no padding: what raggedness costs), and of N
separate forwards, and how many such streams one device keeps in real time (a
round must take < 80 ms).
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
    print(
        "| streams (staggered starts) | one round | a round of streams started together | separate forwards "
        "| speed-up | streams kept in real time |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    rng = np.random.default_rng(0)
    for n in (int(x) for x in args.streams.split(",")):
        window = rng.normal(0, 0.1, engine.window_samples).astype(np.float32)
        rows = []
        for _ in range(n):  # each joins two steps after the one before: n different positions
            [row], _ = engine.start([rng.normal(0, 0.1, engine.first_samples).astype(np.float32)])
            rows.append(row)
            for _ in range(2):
                engine.step(rows, [window] * len(rows))
        positions = len({row.text_len for row in rows})
        together = sorted(timed(engine.step, rows, [window] * n) for _ in range(args.steps))[args.steps // 2]
        aligned, _ = engine.start([rng.normal(0, 0.1, engine.first_samples).astype(np.float32) for _ in range(n)])
        for _ in range(2 * n):
            engine.step(aligned, [window] * n)
        same = sorted(timed(engine.step, aligned, [window] * n) for _ in range(args.steps))[args.steps // 2]
        apart = sorted(sum(timed(engine.step, [row], [window]) for row in rows) for _ in range(args.steps))[
            args.steps // 2
        ]
        kept = n if together < STEP_S else 0
        print(
            f"| {n} ({positions} positions) | {together * 1000:.1f} ms | {same * 1000:.1f} ms | "
            f"{apart * 1000:.1f} ms | "
            f"{apart / together:.1f}x | {'all ' + str(kept) if kept else 'none (round > 80 ms)'} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
