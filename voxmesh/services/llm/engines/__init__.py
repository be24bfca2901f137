"""LLM engines: the interface every post-processing engine meets, and the registry that builds one.

An engine takes one final transcript (with the stream's instruction and its previous transcripts as
context) and streams text deltas, closed by one `Done`. Engines know nothing of gRPC; heavy imports
(torch, transformers) live inside each engine's module.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

from voxmesh import registry
from voxmesh.settings import LlmSettings


@dataclass(frozen=True)
class LlmRequest:
    text: str
    # The stream's instruction; None means the engine's default clean-up.
    instruction: str | None
    # The stream's previous transcripts, oldest first, bounded by the settings.
    context: tuple[str, ...] = ()


@dataclass(frozen=True)
class Done:
    """The end of one request's output."""

    text: str  # the whole processed text; when it differs from the deltas' concatenation, it wins
    outcome: str = "processed"  # "processed", or "guarded" when a fallback replaced the engine's output
    reason: str = ""  # why guarded, or a note on how the engine treated the request


class LlmEngine(Protocol):
    name: str

    async def warmup(self) -> None:
        """Load and exercise the model once before the service says SERVING."""

    def stream(self, request: LlmRequest) -> AsyncIterator[str | Done]:
        """Text deltas as they are produced, then one Done."""

    async def close(self) -> None:
        """Release the model."""


ENGINES = {
    "rules": "voxmesh.services.llm.engines.rules:RulesEngine",
    "transformers": "voxmesh.services.llm.engines.transformers.engine:TransformersEngine",
}


def load_engine(settings: LlmSettings) -> LlmEngine:
    return registry.load(ENGINES, settings.engine)(settings)
