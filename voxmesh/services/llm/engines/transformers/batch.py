"""Rows of a causal LM that decode together in one batch, and join or leave it between any two steps.

Every row is left-padded: its tokens end at the right edge of the batch, padding (attention mask 0) sits
on its left, and its positions count its own tokens from 0, so rows of different lengths share each
forward pass and give the tokens they would give alone. New rows are prefilled together, then joined to
the running batch (the shorter side's KV cache and mask are padded on the left). A row that leaves has its
cache rows dropped, and columns that are padding for every remaining row are trimmed, so the cache never
keeps a long departed row's length.

This is the only module of the LLM service that touches tensors. The scheduler calls it from one worker
thread; nothing here is thread-safe on its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import torch
import torch.nn.functional as F
from transformers import DynamicCache


class ContinuousBatch:
    def __init__(self, model, *, device: str, eos_ids: frozenset[int], temperature: float = 0.0, top_p: float = 1.0):
        self.model = model
        self.device = device
        self.eos_ids = eos_ids
        self.temperature = temperature
        self.top_p = top_p
        self._cache: DynamicCache | None = None
        self._mask: torch.Tensor | None = None  # (rows, columns), 1 where a row has a token
        self._last: torch.Tensor | None = None  # (rows,), each row's latest token, the input of the next step

    @property
    def size(self) -> int:
        return 0 if self._last is None else int(self._last.shape[0])

    def reset(self) -> None:
        self._cache = self._mask = self._last = None

    def _running(self) -> tuple[DynamicCache, torch.Tensor, torch.Tensor]:
        """The running rows' cache, mask and latest tokens: all three are set while the batch has rows."""
        assert self._cache is not None and self._mask is not None and self._last is not None
        return self._cache, self._mask, self._last

    @torch.inference_mode()
    def add(self, prompts: Sequence[Sequence[int]]) -> list[int]:
        """Prefill new rows and join them after the running ones; returns each new row's first token."""
        width = max(len(p) for p in prompts)
        ids = torch.tensor([[0] * (width - len(p)) + list(p) for p in prompts], device=self.device)
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=self.device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        cache = DynamicCache()
        logits = self.model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=positions,
            past_key_values=cache,
            use_cache=True,
            logits_to_keep=1,
        ).logits[:, -1]
        first = self._pick(logits)
        if self._last is None:
            self._cache, self._mask, self._last = cache, mask, first
        else:
            self._join(cache, mask, first)
        return first.tolist()

    @torch.inference_mode()
    def step(self) -> list[int]:
        """One token for every row."""
        cache, running_mask, last = self._running()
        mask = torch.cat([running_mask, running_mask.new_ones(self.size, 1)], dim=1)
        positions = mask.sum(-1, keepdim=True) - 1
        logits = self.model(
            input_ids=last[:, None],
            attention_mask=mask,
            position_ids=positions,
            past_key_values=cache,
            use_cache=True,
            logits_to_keep=1,
        ).logits[:, -1]
        self._mask = mask
        self._last = self._pick(logits)
        return self._last.tolist()

    @torch.inference_mode()
    def retain(self, rows: Sequence[int]) -> None:
        """Keep only these rows (indices into the current batch, in order)."""
        if len(rows) == self.size:
            return
        if not rows:
            self.reset()
            return
        index = torch.tensor(list(rows), device=self.device)
        cache, mask, last = self._running()
        cache.batch_select_indices(index)
        self._mask = mask = mask[index]
        self._last = last[index]
        first = int(mask.any(dim=0).int().argmax())  # the first column some row still uses
        if first:
            for layer in _layers(cache):
                layer.keys, layer.values = layer.keys[:, :, first:], layer.values[:, :, first:]
            self._mask = mask[:, first:]

    def _join(self, cache: DynamicCache, mask: torch.Tensor, first: torch.Tensor) -> None:
        old_cache, old_mask, old_last = self._running()
        width = max(old_mask.shape[1], mask.shape[1])
        old_pad, new_pad = width - old_mask.shape[1], width - mask.shape[1]
        layers = []
        for old, new in zip(_layers(old_cache), _layers(cache), strict=True):
            layers.append(
                (
                    torch.cat([_pad_left(old.keys, old_pad), _pad_left(new.keys, new_pad)]),
                    torch.cat([_pad_left(old.values, old_pad), _pad_left(new.values, new_pad)]),
                )
            )
        joined_mask = torch.cat([F.pad(old_mask, (old_pad, 0)), F.pad(mask, (new_pad, 0))])
        joined_last = torch.cat([old_last, first])
        # assigned only once everything above succeeded, so a failure (out of memory) leaves the batch as it was
        for layer, (keys, values) in zip(_layers(old_cache), layers, strict=True):
            layer.keys, layer.values = keys, values
        self._mask, self._last = joined_mask, joined_last

    def _pick(self, logits: torch.Tensor) -> torch.Tensor:
        if self.temperature <= 0:
            return logits.argmax(dim=-1)
        probs = torch.softmax(logits.float() / self.temperature, dim=-1)
        if self.top_p < 1:
            sorted_probs, order = probs.sort(dim=-1, descending=True)
            outside = sorted_probs.cumsum(dim=-1) - sorted_probs > self.top_p  # keeps at least the top token
            sorted_probs[outside] = 0
            probs = torch.zeros_like(probs).scatter(-1, order, sorted_probs)
        return torch.multinomial(probs, 1)[:, 0]


def _layers(cache: DynamicCache) -> list[Any]:
    """A cache's layers, each with `keys` and `values` states (rows, heads, columns, head_dim). transformers types
    them loosely (a layer of any kind of cache, its states None before the first forward); a DynamicCache of a
    causal LM after its prefill has exactly these."""
    return cast("list[Any]", cache.layers)


def _pad_left(states: torch.Tensor, columns: int) -> torch.Tensor:
    """Key or value states (rows, heads, columns, head_dim) with zero columns added on the left."""
    return F.pad(states, (0, 0, columns, 0)) if columns else states
