"""The real ASR service (servicer, sessions, batching scheduler) with an engine that sleeps a fixed time per
batch, so that bench/mesh_scale.py measures the mesh apart from any model. The sleep releases the GIL, as a
GPU engine's host thread does while the device computes. The engine is injected here, in the bench, not
through the product's engine registry.

    python bench/sleep_asr.py --engine-ms 20 --max-batch 16 [voxmesh serve asr flags ...]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from voxmesh import SAMPLE_RATE
from voxmesh.services.asr.engines import AsrResult, EngineCapabilities


class SleepEngine:
    def __init__(self, seconds: float, max_batch: int):
        self.seconds = seconds
        self.name = f"sleep:{seconds * 1000:g}ms"
        self.capabilities = EngineCapabilities(streaming=False, max_batch_size=max_batch, languages=None)

    def warmup(self) -> None:
        """Nothing loads lazily: a sleep costs the same the first time."""

    def transcribe(self, batch):
        time.sleep(self.seconds)
        return [AsrResult(f"{len(request.audio) / SAMPLE_RATE:.2f} seconds of speech", "en") for request in batch]

    def close(self) -> None:
        """No model to release."""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine-ms", type=float, default=20.0)
    parser.add_argument("--max-batch", type=int, default=16)
    args, rest = parser.parse_known_args()
    engine = SleepEngine(args.engine_ms / 1000, args.max_batch)

    import voxmesh.services.asr.service as service
    from voxmesh.cli import serve_main

    service.load_engine = lambda _settings: engine  # type: ignore[assignment]
    return serve_main("asr", rest)


if __name__ == "__main__":
    raise SystemExit(main())
