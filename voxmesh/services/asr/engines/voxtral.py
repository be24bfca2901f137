"""Voxtral through transformers: Voxtral-Mini-3B-2507 and any checkpoint of that architecture.

Every request becomes `processor.apply_transcription_request(...)`, which pads audio to 30-second
windows (so a short utterance costs a full window of encoder work) and splits longer audio into several
windows, so long utterances are transcribed whole. One call takes a whole batch from the scheduler: one
padded prompt per request (left padding), one greedy `generate`. The `lang:xx` prefix the model writes
when it detects the language is stripped from the text and reported as the language.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Sequence

from voxmesh import SAMPLE_RATE
from voxmesh.services.asr.engines import MODEL_SETTING, AsrRequest, AsrResult, EngineCapabilities, in_groups
from voxmesh.settings import AsrSettings
from voxmesh.torch_runtime import load_processor_and_model

log = logging.getLogger("voxmesh.asr.voxtral")

DEFAULT_MODEL = "mistralai/Voxtral-Mini-3B-2507"
_LANG_PREFIX = re.compile(r"^\s*lang:([a-z]{2,3})\s*")
TOKENS_PER_SECOND = 8  # default budget: ~3 words/s of speech is ~5 tokens/s; leave room
BASE_TOKENS = 16
PARTIAL_MAX_TOKENS = 96  # a partial is a preview: its decode is cut here (about 60 words), a final's never is
WINDOW_SAMPLES = 30 * SAMPLE_RATE  # the processor pads each utterance to whole 30 s windows
# The languages of Voxtral-Mini-3B-2507 and Voxtral-Small-24B-2507 (their model cards). mistral-common's
# TranscriptionRequest takes ISO 639-1 codes only; a stream asking for another code is refused up front
# (INVALID_ARGUMENT) instead of failing every utterance inside apply_transcription_request.
LANGUAGES = frozenset({"en", "es", "fr", "pt", "hi", "de", "nl", "it"})


def split_language(text: str, asked: str | None) -> tuple[str, str]:
    """Text without a leading `lang:xx`, and the language (the detected one, else the one asked for)."""
    match = _LANG_PREFIX.match(text)
    if match:
        return text[match.end() :].strip(), match.group(1)
    return text.strip(), asked or ""


class VoxtralEngine:
    def __init__(self, settings: AsrSettings):
        import torch
        from transformers import VoxtralForConditionalGeneration

        self.model_id = settings.model or DEFAULT_MODEL
        self.processor, self.model, self.place = load_processor_and_model(
            VoxtralForConditionalGeneration, self.model_id, settings.device, MODEL_SETTING, "Voxtral model"
        )
        self.processor.tokenizer.padding_side = "left"
        if settings.torch_compile:
            self.model.forward = torch.compile(self.model.forward, dynamic=True)
        self.torch = torch
        self.capabilities = EngineCapabilities(
            streaming=False, max_batch_size=settings.max_batch_size, languages=LANGUAGES
        )
        self.max_new_tokens = settings.max_new_tokens
        self.name = f"voxtral:{self.model_id.rstrip('/').split('/')[-1]}"
        log.info(
            "model loaded",
            extra={
                "model": self.model_id,
                "device": self.place.device,
                "dtype": str(self.place.dtype),
                "attn": self.place.attn_implementation,
                "compiled": settings.torch_compile,
            },
        )

    def _budget(self, batch: Sequence[AsrRequest]) -> int:
        if self.max_new_tokens:
            return self.max_new_tokens
        longest = max(len(r.audio) for r in batch) / SAMPLE_RATE
        budget = BASE_TOKENS + math.ceil(TOKENS_PER_SECOND * longest)
        return budget if any(r.final for r in batch) else min(budget, PARTIAL_MAX_TOKENS)

    def warmup(self) -> None:
        import numpy as np

        silence = np.zeros(SAMPLE_RATE, dtype=np.float32)
        self.transcribe([AsrRequest(silence, "en", final=True)])

    def transcribe(self, batch: Sequence[AsrRequest]) -> list[AsrResult]:
        """Requests of the same number of 30 s windows share a `generate` (a batch pays for its longest
        prompt and its longest output, so a 40 s utterance does not make 5 s ones pay for two windows)."""
        return in_groups(batch, lambda r: math.ceil(max(1, len(r.audio)) / WINDOW_SAMPLES), self._generate)

    def _generate(self, batch: Sequence[AsrRequest]) -> list[AsrResult]:
        inputs = self.processor.apply_transcription_request(
            language=[r.language for r in batch],
            audio=[r.audio for r in batch],
            sampling_rate=SAMPLE_RATE,
            format=["wav"] * len(batch),
            model_id=self.model_id,
            device=self.place.device,  # the log-mel spectrogram on the GPU, not on the host while it waits
        )
        inputs = inputs.to(self.place.device, dtype=self.place.dtype)
        # Out of memory propagates: the scheduler frees the batch's frames and the CUDA cache, then splits it.
        with self.torch.inference_mode():
            output = self.model.generate(**inputs, max_new_tokens=self._budget(batch), do_sample=False)
        texts = self.processor.batch_decode(output[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
        return [AsrResult(*split_language(text, r.language)) for text, r in zip(texts, batch, strict=True)]

    def close(self) -> None:
        del self.model
        if self.place.device == "cuda":
            self.torch.cuda.empty_cache()
