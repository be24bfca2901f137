"""Voxtral Realtime through transformers (Voxtral-Mini-4B-Realtime-2602): true streaming.

Audio is fed as it arrives, one 80 ms token step at a time; each step returns one token, so text comes
while the speaker is still talking and trails the audio by the transcription delay. The model is shared
by every stream; each stream (or each cohort of streams that started together) owns its state: the text
KV cache, the encoder KV cache, the convolution padding cache and its last token. Steps call the model's
forward directly: `generate()` keeps a flag on the model that mixes up streams run concurrently.

The audio layout, from the processor: the first call takes `num_samples_first_audio_chunk` samples (the
processor adds the left padding); then step k takes the `num_samples_per_audio_chunk` (1680) samples from
`(delay_tokens + 1 + k) * 1280 - win_length // 2`. At the utterance's end the audio is right-padded with
`num_right_pad_tokens` x 1280 zero samples, which flushes the delay, and a last short window is zero-padded.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from voxmesh.services.asr.engines import MODEL_SETTING, EngineCapabilities
from voxmesh.settings import AsrSettings
from voxmesh.torch_runtime import load_processor_and_model

if TYPE_CHECKING:
    import torch

log = logging.getLogger("voxmesh.asr.voxtral_realtime")

DEFAULT_MODEL = "mistralai/Voxtral-Mini-4B-Realtime-2602"


@dataclass
class CohortState:
    """The model state of streams that advance together (batch dimension = members, in order)."""

    # The model's caches, as its forward returns them: transformers cache classes (a DynamicCache and the
    # Voxtral Realtime encoder and padding caches), which the model module defines and types loosely.
    past: Any
    encoder_past: Any
    padding: Any
    last: torch.Tensor  # (B, 1): each row's last token
    size: int


def _layers_copy(cache: Any) -> Any:
    """A transformers cache whose layer objects are copies (their tensors shared until replaced)."""
    copied = copy.copy(cache)
    copied.layers = [copy.copy(layer) for layer in cache.layers]
    return copied


class VoxtralRealtimeEngine:
    """A StreamingAsrEngine. The realtime prompt carries no language: the model transcribes what it hears."""

    def __init__(self, settings: AsrSettings):
        import torch
        from transformers import VoxtralRealtimeForConditionalGeneration

        self.torch = torch
        self.model_id = settings.model or DEFAULT_MODEL
        self.processor, self.model, self.place = load_processor_and_model(
            VoxtralRealtimeForConditionalGeneration,
            self.model_id,
            settings.device,
            MODEL_SETTING,
            "Voxtral Realtime model",
        )
        audio_config = self.processor.tokenizer.tokenizer.instruct_tokenizer.audio_encoder.audio_config
        audio_config.transcription_delay_ms = settings.transcription_delay_ms
        if settings.torch_compile:
            self.model.forward = torch.compile(self.model.forward, dynamic=True)
        p = self.processor
        self.delay_tokens = p.num_delay_tokens
        self.hop = p.raw_audio_length_per_tok
        self.first_samples = p.num_samples_first_audio_chunk
        self.window_samples = p.num_samples_per_audio_chunk
        self.window_origin = (self.delay_tokens + 1) * self.hop - p.feature_extractor.win_length // 2
        self.right_pad_samples = p.num_right_pad_tokens * self.hop
        self.capabilities = EngineCapabilities(
            streaming=True, max_batch_size=settings.max_batch_size, languages=None, step_samples=self.hop
        )
        self.name = f"voxtral-realtime:{self.model_id.rstrip('/').split('/')[-1]}"
        log.info(
            "model loaded",
            extra={
                "model": self.model_id,
                "device": self.place.device,
                "delay_ms": settings.transcription_delay_ms,
                "delay_tokens": self.delay_tokens,
            },
        )

    def window_start(self, k: int) -> int:
        """First sample (in the utterance's audio) of step k's window."""
        return self.window_origin + k * self.hop

    def windows_available(self, n_samples: int, finished: bool) -> int:
        """How many step windows `n_samples` of audio hold (a finished utterance's are right-padded)."""
        if finished:
            n_samples += self.right_pad_samples
            # the last window may be short: it is zero-padded (a short window fails inside the model)
            return max(0, -(-(n_samples - (self.window_samples - self.hop) - self.window_origin) // self.hop))
        return max(0, (n_samples - self.window_samples - self.window_origin) // self.hop + 1)

    def start(self, first_chunks: Sequence[np.ndarray]) -> tuple[CohortState, list[int]]:
        """Prefill streams that start together: the prompt and their first audio, one batched forward."""
        inputs = self.processor(list(first_chunks), is_streaming=True, is_first_audio_chunk=True, return_tensors="pt")
        inputs = inputs.to(self.place.device, dtype=self.place.dtype)
        with self.torch.inference_mode():
            out = self.model(
                input_ids=inputs["input_ids"],
                input_features=inputs["input_features"],
                num_delay_tokens=self.delay_tokens,
                use_cache=True,
            )
        last = out.logits[:, -1].argmax(-1, keepdim=True)
        cohort = CohortState(
            out.past_key_values, out.encoder_past_key_values, out.padding_cache, last, len(first_chunks)
        )
        return cohort, last[:, 0].tolist()

    def step(self, cohort: CohortState, windows: Sequence[np.ndarray]) -> list[int]:
        """Advance every row of the cohort by one 80 ms token."""
        features = self.processor(list(windows), is_streaming=True, is_first_audio_chunk=False, return_tensors="pt")
        features = features["input_features"].to(self.place.device, dtype=self.place.dtype)
        with self.torch.inference_mode():
            out = self.model(
                input_ids=cohort.last,
                input_features=features,
                past_key_values=cohort.past,
                encoder_past_key_values=cohort.encoder_past,
                padding_cache=cohort.padding,
                num_delay_tokens=self.delay_tokens,
                use_cache=True,
            )
        cohort.past, cohort.encoder_past, cohort.padding = (
            out.past_key_values,
            out.encoder_past_key_values,
            out.padding_cache,
        )
        cohort.last = out.logits[:, -1].argmax(-1, keepdim=True)
        return cohort.last[:, 0].tolist()

    def select(self, cohort: CohortState, rows: Sequence[int]) -> CohortState:
        """A new cohort of some rows (the old one stays valid): for streams that fall out of step or finish.
        Only the chosen rows' tensors are gathered (an index_select per layer); nothing else is copied. Runs on
        the engine thread, as the model does."""
        index = self.torch.tensor(list(rows), device=cohort.last.device)
        past, encoder_past = _layers_copy(cohort.past), _layers_copy(cohort.encoder_past)
        past.batch_select_indices(index)  # each layer's tensors are replaced by new ones: the copies' alone
        encoder_past.batch_select_indices(index)
        padding = copy.copy(cohort.padding)
        padding.layers = {name: copy.copy(layer) for name, layer in cohort.padding.layers.items()}
        for layer in padding.layers.values():
            layer.cache = layer.cache.index_select(0, index)
        return CohortState(past, encoder_past, padding, cohort.last.index_select(0, index), len(rows))

    def decode(self, tokens: Sequence[int]) -> str:
        return self.decode_piece(tokens).strip()

    def decode_piece(self, tokens: Sequence[int]) -> str:
        """The text of some tokens as they are, spaces included (pieces of a stream's text join up)."""
        return self.processor.tokenizer.decode(list(tokens), skip_special_tokens=True)

    def warmup(self) -> None:
        cohort, _ = self.start([np.zeros(self.first_samples, np.float32)])
        for _ in range(3):
            self.step(cohort, [np.zeros(self.window_samples, np.float32)])

    def close(self) -> None:
        del self.model
        if self.place.device == "cuda":
            self.torch.cuda.empty_cache()
