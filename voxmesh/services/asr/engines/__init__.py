"""ASR engines: the interface every engine meets, and the registry that builds one from settings.

Engines know nothing of gRPC. Each lives in its own module and makes its heavy imports (ctranslate2,
torch, transformers) there, so importing this package costs nothing.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from voxmesh.settings import AsrSettings


@dataclass(frozen=True)
class AsrRequest:
    """One utterance's audio to transcribe: float32 samples in [-1, 1), 16 kHz mono."""

    audio: np.ndarray
    language: str | None
    final: bool  # False for a partial re-decode, which may use cheaper settings


@dataclass(frozen=True)
class AsrResult:
    text: str
    language: str


class AsrEngine(Protocol):
    """An engine that transcribes whole utterances (re-decoded for partials). A streaming engine
    (`streaming = True`, see engines/voxtral_realtime.py) instead takes audio step by step through
    services/asr/lockstep.py."""

    # Engine and model, e.g. "whisper:tiny.en"; reported with every final transcript.
    name: str
    # The most requests one transcribe() call takes; 1 for engines that cannot batch.
    max_batch_size: int
    # Languages the model transcribes (ISO 639-1), or None for any.
    languages: frozenset[str] | None

    def warmup(self) -> None:
        """Run the model once so that the first real request does not pay for lazy initialisation."""

    def transcribe(self, batch: Sequence[AsrRequest]) -> list[AsrResult]:
        """Transcribe a batch (blocking; the scheduler calls it from its worker thread)."""

    def close(self) -> None:
        """Release the model."""


MODEL_SETTING = "VOXMESH_ASR_MODEL / --model"

ENGINES = {
    "whisper": "services.asr.engines.whisper:WhisperEngine",
    "voxtral": "services.asr.engines.voxtral:VoxtralEngine",
    "voxtral-realtime": "services.asr.engines.voxtral_realtime:VoxtralRealtimeEngine",
}


def load_engine(settings: AsrSettings) -> AsrEngine:
    """Build the engine the settings name (blocking: loads the model)."""
    module, _, cls = ENGINES[settings.engine].partition(":")
    return getattr(importlib.import_module(module), cls)(settings)
