"""Rows at different positions in one forward: per-row KV caches stacked left-padded, with a column mask.

Each utterance owns its KV cache, per layer a key and a value tensor of shape (1, heads, stored, head_dim).
For a forward of several utterances their tensors are stacked on the batch dimension; a row shorter than
the longest is padded on the left with zero columns, which its row of the 2D mask marks False, so every
row's own tokens sit contiguous at the right. Attention is then causal in column space and the mask hides
the padding. A sliding-window layer stores only its last `window - 1` columns, and column distance equals
token distance in every row, so the window stays exact. Each row's positions (for the rotary embedding)
are its own token count, which the caller passes.

After the forward, each row takes its part of the grown tensors back as views (no copy). Stacking copies
the rows' tensors once per forward; transformers' `DynamicLayer.update` concatenates the whole layer on
every step as well, so the stack costs about what one step's cache update already does.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import torch

# One utterance's cache: per layer, (keys, values) of shape (1, heads, stored columns, head_dim).
RowCache = list[tuple[torch.Tensor, torch.Tensor]]


def template(cache: Any) -> Any:
    """A copy of a transformers cache's structure (its class and layer types, windows, dtype) holding no
    tensors, to build stacked caches from."""
    empty = copy.copy(cache)
    empty.layers = [copy.copy(layer) for layer in cache.layers]
    for layer in empty.layers:
        layer.keys = layer.values = None
    return empty


def _stored(layer: Any, length: int) -> int:
    """Columns a layer keeps of `length` seen (a sliding layer, its last `window - 1`)."""
    window = getattr(layer, "sliding_window", None)
    return length if window is None else min(length, window - 1)


def _left_padded(tensor: torch.Tensor, columns: int) -> torch.Tensor:
    return torch.nn.functional.pad(tensor, (0, 0, columns - tensor.shape[-2], 0))


def split(cache: Any, lengths: Sequence[int]) -> list[RowCache]:
    """Each row's layers, as views of the batch's tensors, without its left padding."""
    rows: list[RowCache] = [[] for _ in lengths]
    for layer in cache.layers:
        width = layer.keys.shape[-2]
        for i, length in enumerate(lengths):
            first = width - _stored(layer, length)
            rows[i].append((layer.keys[i : i + 1, :, first:], layer.values[i : i + 1, :, first:]))
    return rows


def stack(empty: Any, rows: Sequence[RowCache], lengths: Sequence[int]) -> tuple[Any, torch.Tensor]:
    """One cache of the rows' layers (built on `template`'s structure), each left-padded to the longest
    row, and the (rows, columns) mask of the columns that hold a row's own tokens."""
    width = max(lengths)
    cache = copy.copy(empty)
    cache.layers = []
    for i, shape in enumerate(empty.layers):
        layer = copy.copy(shape)
        keep = _stored(layer, width)
        layer.keys = torch.cat([_left_padded(row[i][0], keep) for row in rows])
        layer.values = torch.cat([_left_padded(row[i][1], keep) for row in rows])
        layer.is_initialized = True
        if hasattr(layer, "cumulative_length"):
            layer.cumulative_length = width
        cache.layers.append(layer)
    device = cache.layers[0].keys.device
    starts = torch.tensor([width - length for length in lengths], device=device)
    return cache, torch.arange(width, device=device)[None, :] >= starts[:, None]
