"""ASR engines: the two shapes an engine takes, what it can do, and the registry that builds one.

- A `BatchAsrEngine` transcribes whole utterances, a batch at a time (re-decoded for partials); the
  batching scheduler (voxmesh/services/asr/scheduler.py) feeds it.
- A `StreamingAsrEngine` takes audio step by step, a token per step, for any set of utterances in one
  forward whatever their positions; the round scheduler (voxmesh/services/asr/rounds.py) feeds it.
Each says what it can do in `capabilities`. Engines know nothing of gRPC; each lives in its own module and
makes its heavy imports (ctranslate2, torch, transformers) there, so importing this package costs nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import numpy as np

from voxmesh import registry
from voxmesh.settings import AsrSettings


@dataclass(frozen=True)
class AsrRequest:
    """One utterance's audio to transcribe: float32 samples in [-1, 1), 16 kHz mono."""

    audio: np.ndarray
    language: str | None
    final: bool  # False for a partial re-decode, which may use cheaper settings
    # The stream's recent final text, for engines whose capabilities say they take context ("" for none);
    # with a lead, the text before the lead's.
    context: str = ""
    # The stream's latest utterances before this one, oldest first: their audio and their final text, for
    # engines whose capabilities say context_audio.
    lead: tuple[tuple[np.ndarray, str], ...] = ()
    # The stream's asks, for engines whose capabilities allow them: word timings, and hints (phrases the
    # speaker is likely to say, joined; a free-text prompt).
    words: bool = False
    hints: str = ""
    # The engine is behind (the scheduler's hurry_above): decode the cheaper way where the engine has one.
    hurry: bool = False


Item = TypeVar("Item")
Answer = TypeVar("Answer")


def in_groups(
    items: Sequence[Item], key: Callable[[Item], Hashable], run: Callable[[list[Item]], list[Answer]]
) -> list[Answer]:
    """`run` once per group of items with the same key (what one model call can take together); the
    answers come back in the items' order."""
    groups: dict[Hashable, list[int]] = {}
    for index, item in enumerate(items):
        groups.setdefault(key(item), []).append(index)
    answers: dict[int, Answer] = {}
    for indices in groups.values():
        answers.update(zip(indices, run([items[i] for i in indices]), strict=True))
    return [answers[i] for i in range(len(items))]


@dataclass(frozen=True)
class Word:
    """A word of a transcript and when it was said, in seconds from the start of the utterance's audio."""

    text: str
    start_s: float
    end_s: float
    confidence: float | None = None


@dataclass(frozen=True)
class AsrResult:
    text: str
    language: str
    words: tuple[Word, ...] = ()  # when the request asked for them
    confidence: float | None = None  # of the whole text, 0 to 1, where the engine has one


@dataclass(frozen=True)
class EngineCapabilities:
    # Audio step by step (a StreamingAsrEngine), or whole utterances (a BatchAsrEngine).
    streaming: bool
    # The most requests (or streams' rows) one model call takes; 1 for an engine that cannot batch.
    max_batch_size: int
    # Languages the model transcribes (ISO 639-1), or None for any.
    languages: frozenset[str] | None
    # Streaming engines: samples of audio per token step (the text trails the audio by steps of it).
    step_samples: int = 0
    # Whether the engine conditions a request on its stream's recent final text (AsrRequest.context).
    context: bool = False
    # Whether it also hears the audio of the stream's latest utterances again, with their text (AsrRequest.lead).
    context_audio: bool = False
    # Whether it times the words of a final (AsrRequest.words), and takes phrase hints and a prompt.
    word_timings: bool = False
    hints: bool = False


class BatchAsrEngine(Protocol):
    # Engine and model, e.g. "whisper:tiny.en"; reported with every final transcript.
    name: str
    capabilities: EngineCapabilities

    def warmup(self) -> None:
        """Run the model once so that the first real request does not pay for lazy initialisation."""

    def transcribe(self, batch: Sequence[AsrRequest]) -> list[AsrResult]:
        """Transcribe a batch (blocking; the scheduler calls it from its worker thread)."""

    def close(self) -> None:
        """Release the model."""


class StreamingAsrEngine(Protocol):
    name: str
    capabilities: EngineCapabilities
    # Samples the first call takes (with the prompt), and each later step's window; how many steps the
    # text trails the audio by.
    first_samples: int
    window_samples: int
    delay_tokens: int

    def warmup(self) -> None: ...

    def start(self, first_chunks: Sequence[np.ndarray]) -> tuple[list[Any], list[int]]:
        """Prefill utterances that start together; a state for each (in order) and their first tokens."""

    def step(self, states: Sequence[Any], windows: Sequence[np.ndarray]) -> list[int]:
        """Advance each utterance by one token step, in one forward (their states are updated in place)."""

    def window_start(self, k: int) -> int:
        """First sample, in an utterance's audio, of step k's window."""

    def windows_available(self, n_samples: int, finished: bool) -> int:
        """How many step windows `n_samples` of audio hold."""

    def decode(self, tokens: Sequence[int]) -> str:
        """An utterance's whole text, trimmed."""

    def decode_piece(self, tokens: Sequence[int]) -> str:
        """The text of a run of tokens, untrimmed, for text that grows token by token."""

    def close(self) -> None: ...


AsrEngine = BatchAsrEngine | StreamingAsrEngine


MODEL_SETTING = "VOXMESH_ASR_MODEL / --model"

ENGINES = {
    "whisper": "voxmesh.services.asr.engines.whisper:WhisperEngine",
    "voxtral": "voxmesh.services.asr.engines.voxtral:VoxtralEngine",
    "voxtral-realtime": "voxmesh.services.asr.engines.voxtral_realtime:VoxtralRealtimeEngine",
}


def load_engine(settings: AsrSettings) -> AsrEngine:
    """Build the engine the settings name (blocking: loads the model)."""
    return registry.load(ENGINES, settings.engine)(settings)
