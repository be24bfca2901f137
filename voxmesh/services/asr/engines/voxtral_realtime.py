"""Voxtral Realtime through transformers (Voxtral-Mini-4B-Realtime-2602): true streaming.

Audio is fed as it arrives, one 80 ms token step at a time; each step returns one token, so text comes
while the speaker is still talking and trails the audio by the transcription delay. The model is shared
by every stream; each utterance owns its state: the text KV cache, the encoder KV cache, the convolution
padding cache, its last token and its positions. One step advances any set of utterances in one forward,
whatever position each is at (`ragged`: caches stacked left-padded, masks, per-row positions). Steps call
the model's parts directly: its own forward numbers every row from the cache's length, and `generate()`
keeps a flag on the model that mixes up streams run concurrently.

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

from voxmesh.services.asr.engines import MODEL_SETTING, EngineCapabilities, ragged
from voxmesh.settings import AsrSettings
from voxmesh.torch_runtime import load_processor_and_model

if TYPE_CHECKING:
    import torch

log = logging.getLogger("voxmesh.asr.voxtral_realtime")

DEFAULT_MODEL = "mistralai/Voxtral-Mini-4B-Realtime-2602"


@dataclass(eq=False)
class RowState:
    """One utterance's model state, between the forwards it takes part in: its caches (views of the last
    forward's batch tensors), its last token and how far it has come."""

    text: ragged.RowCache  # the text decoder's KV cache
    audio: ragged.RowCache  # the audio encoder's KV cache
    padding: dict[str, torch.Tensor]  # the encoder convolutions' left context, (1, channels, width) each
    last: int  # its last token, the next forward's input
    text_len: int  # tokens seen: its next text position
    audio_len: int  # encoder frames seen: its next audio position


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
        # the width of one token's encoder frames, as the projector takes them
        self._audio_width = self.model.config.audio_config.hidden_size * self.model.config.downsample_factor
        self._shapes: tuple[Any, Any] | None = None  # the text and encoder cache structures, from a prefill
        self._padding_shape: Any = None
        self.capabilities = EngineCapabilities(
            streaming=True,
            max_batch_size=settings.max_batch_size,
            languages=None,
            step_samples=self.hop,
            word_timings=True,  # from the step each token came at, less the delay
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

    def _features(self, audio: Sequence[np.ndarray], *, first: bool) -> Any:
        """The processor's inputs; the log-mel spectrogram is computed on the model's device (a GPU's STFT of
        the whole round, not the host's while the GPU waits)."""
        return self.processor(
            list(audio), is_streaming=True, is_first_audio_chunk=first, return_tensors="pt", device=self.place.device
        )

    def start(self, first_chunks: Sequence[np.ndarray]) -> tuple[list[RowState], list[int]]:
        """Prefill utterances that start together: the prompt and their first audio, one batched forward
        (prompts and first chunks have one length, so no row is padded). Each gets its own state."""
        inputs = self._features(first_chunks, first=True)
        inputs = inputs.to(self.place.device, dtype=self.place.dtype)
        with self.torch.inference_mode():
            out = self.model(
                input_ids=inputs["input_ids"],
                input_features=inputs["input_features"],
                num_delay_tokens=self.delay_tokens,
                use_cache=True,
            )
        if self._shapes is None:  # the cache classes and layer types, to stack rows into later
            self._shapes = (ragged.template(out.past_key_values), ragged.template(out.encoder_past_key_values))
            self._padding_shape = out.padding_cache
        last = out.logits[:, -1].argmax(-1).tolist()
        rows = len(first_chunks)
        text, audio = out.past_key_values.get_seq_length(), out.encoder_past_key_values.get_seq_length()
        texts = ragged.split(out.past_key_values, [text] * rows)
        audios = ragged.split(out.encoder_past_key_values, [audio] * rows)
        padding = {name: layer.cache for name, layer in out.padding_cache.layers.items()}
        states = [
            RowState(texts[i], audios[i], {n: c[i : i + 1] for n, c in padding.items()}, last[i], text, audio)
            for i in range(rows)
        ]
        return states, last

    def step(self, rows: Sequence[RowState], windows: Sequence[np.ndarray]) -> list[int]:
        """Advance each row by one 80 ms token, all in one forward, whatever position each row is at: the
        rows' caches are stacked left-padded (`ragged`) and the model's parts are called with each row's
        own positions and the column masks (the model's own forward numbers every row from the cache's
        length, so it cannot)."""
        torch, model = self.torch, self.model.model
        assert self._shapes is not None, "start() comes first"
        features = self._features(windows, first=False)["input_features"].to(self.place.device, dtype=self.place.dtype)
        count, device = len(rows), self.place.device
        text_past, text_mask = ragged.stack(self._shapes[0], [r.text for r in rows], [r.text_len for r in rows])
        audio_past, audio_mask = ragged.stack(self._shapes[1], [r.audio for r in rows], [r.audio_len for r in rows])
        padding = copy.copy(self._padding_shape)
        padding.layers = {}
        for name, shape in self._padding_shape.layers.items():
            padding.layers[name] = copy.copy(shape)
            padding.layers[name].cache = torch.cat([r.padding[name] for r in rows])
        audio_lens = torch.tensor([r.audio_len for r in rows], device=device)
        with torch.inference_mode():
            frames = model.audio_tower.embedder(features, padding)
            per_row = frames.shape[1]
            ones = torch.ones(count, per_row, dtype=torch.bool, device=device)
            encoded = model.audio_tower(
                inputs_embeds=frames,
                position_ids=audio_lens[:, None] + torch.arange(per_row, device=device),
                attention_mask=torch.cat([audio_mask, ones], 1),
                past_key_values=audio_past,
                use_cache=True,
            ).last_hidden_state
            audio = model.multi_modal_projector(encoded.reshape(count, -1, self._audio_width))
            tokens = torch.tensor([[r.last] for r in rows], device=device)
            embeds = model.get_input_embeddings()(tokens) + audio
            delay = torch.full((1,), self.delay_tokens, device=device, dtype=embeds.dtype)
            hidden = model.language_model(
                inputs_embeds=embeds,
                position_ids=torch.tensor([[r.text_len] for r in rows], device=device),
                attention_mask=torch.cat([text_mask, ones[:, :1]], 1),
                past_key_values=text_past,
                use_cache=True,
                t_cond=model.time_embedding(delay)[None],
            ).last_hidden_state
            last = self.model.lm_head(hidden[:, -1]).argmax(-1).tolist()
        texts = ragged.split(text_past, [r.text_len + 1 for r in rows])
        audios = ragged.split(audio_past, [r.audio_len + per_row for r in rows])
        for i, row in enumerate(rows):
            row.text, row.audio, row.last = texts[i], audios[i], last[i]
            row.padding = {name: layer.cache[i : i + 1] for name, layer in padding.layers.items()}
            row.text_len += 1
            row.audio_len += per_row
        return last

    def decode(self, tokens: Sequence[int]) -> str:
        return self.decode_piece(tokens).strip()

    def decode_piece(self, tokens: Sequence[int]) -> str:
        """The text of some tokens as they are, spaces included (pieces of a stream's text join up)."""
        return self.processor.tokenizer.decode(list(tokens), skip_special_tokens=True)

    def warmup(self) -> None:
        rows, _ = self.start([np.zeros(self.first_samples, np.float32)])
        for _ in range(3):
            self.step(rows, [np.zeros(self.window_samples, np.float32)])

    def close(self) -> None:
        del self.model
        if self.place.device == "cuda":
            self.torch.cuda.empty_cache()
