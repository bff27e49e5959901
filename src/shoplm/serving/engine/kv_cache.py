"""Row surgery on a batch's KV cache: sequences join and leave between decode steps.

The running batch is left-padded: every row's newest token sits in the last column, so one
decode step appends one column for all rows. Joining pads the shorter cache on the left;
leaving selects rows and then drops leading columns that no remaining row attends to.
"""

from __future__ import annotations

from typing import Protocol, cast

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer


def supports_row_surgery(cache: object) -> bool:
    """True when every layer is a plain growing layer (no sliding window, no static buffer)."""
    return isinstance(cache, DynamicCache) and all(type(layer) is DynamicLayer for layer in cache.layers)


class _KeyValues(Protocol):
    keys: torch.Tensor
    values: torch.Tensor


def _layers(cache: DynamicCache) -> list[_KeyValues]:
    """The cache's layers; callers checked :func:`supports_row_surgery` (all DynamicLayer)."""
    return cast(list[_KeyValues], list(cache.layers))


def _pad_left(tensor: torch.Tensor, columns: int, dim: int) -> torch.Tensor:
    if columns == 0:
        return tensor
    shape = list(tensor.shape)
    shape[dim] = columns
    return torch.cat([tensor.new_zeros(shape), tensor], dim=dim)


def merge(
    cache: DynamicCache, mask: torch.Tensor, joining: DynamicCache, joining_mask: torch.Tensor
) -> tuple[DynamicCache, torch.Tensor]:
    """Append the rows of ``joining`` below those of ``cache``; masks are [rows, columns]."""
    width = max(mask.shape[1], joining_mask.shape[1])
    for layer, new_layer in zip(_layers(cache), _layers(joining), strict=True):
        old_pad = width - layer.keys.shape[-2]
        new_pad = width - new_layer.keys.shape[-2]
        layer.keys = torch.cat([_pad_left(layer.keys, old_pad, -2), _pad_left(new_layer.keys, new_pad, -2)])
        layer.values = torch.cat(
            [_pad_left(layer.values, old_pad, -2), _pad_left(new_layer.values, new_pad, -2)]
        )
    merged_mask = torch.cat(
        [_pad_left(mask, width - mask.shape[1], 1), _pad_left(joining_mask, width - joining_mask.shape[1], 1)]
    )
    return cache, merged_mask


def keep_rows(cache: DynamicCache, mask: torch.Tensor, rows: list[int]) -> torch.Tensor:
    """Keep only ``rows`` (in place on the cache) and trim padding columns no row needs."""
    index = torch.tensor(rows, device=mask.device)
    cache.batch_select_indices(index)
    mask = mask.index_select(0, index)
    used = mask.any(dim=0).nonzero()
    first = int(used[0]) if used.numel() else mask.shape[1]
    if first > 0:
        for layer in _layers(cache):
            layer.keys = layer.keys[:, :, first:]
            layer.values = layer.values[:, :, first:]
        mask = mask[:, first:]
    return mask
