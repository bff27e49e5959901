"""What the generation scheduler needs from a model runtime, and the transformers runtime.

The scheduler (``engine.generation``) decides which sequences run each step; a decoder holds
their KV cache and turns "prefill these prompts" or "append these tokens" into next-token
logits, one row per sequence, in the order the sequences joined.
"""

from __future__ import annotations

import inspect
from typing import Protocol, cast

import torch
from transformers import DynamicCache

from shoplm.serving.engine import kv_cache
from shoplm.serving.loading import LoadedModel


class Decoder(Protocol):
    """A batch of running sequences inside one model runtime."""

    eos_ids: set[int]
    max_positions: int
    device: torch.device

    def can_join(self) -> bool:
        """Whether new sequences may be prefilled into the running batch now."""

    def prefill(self, prompts: list[list[int]]) -> torch.Tensor:
        """Start ``prompts`` after the running rows; their next-token logits, one row each."""

    def decode(self, tokens: list[int]) -> torch.Tensor:
        """Append one token to every running row; the next-token logits of every row."""

    def keep(self, rows: list[int]) -> None:
        """Keep only ``rows`` (indices in joining order) and free the others' cache."""

    def reset(self) -> None:
        """Drop every row (after a failed step)."""

    def warm_up(self) -> None:
        """Run one tiny forward pass, so the first request does not pay for lazy setup."""


class TransformersDecoder:
    """A left-padded batch over a transformers causal LM and its DynamicCache."""

    def __init__(self, loaded: LoadedModel) -> None:
        self.loaded = loaded
        self.device = loaded.device
        tokenizer = loaded.tokenizer
        eos = loaded.model.generation_config.eos_token_id
        eos_ids = eos if isinstance(eos, list) else [eos]
        self.eos_ids = {int(i) for i in [*eos_ids, tokenizer.eos_token_id] if i is not None}
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(self.eos_ids, default=0)
        self.max_positions = int(getattr(loaded.model.config, "max_position_embeddings", 0) or 1 << 30)
        forward = inspect.signature(loaded.model.forward).parameters
        self._logits_kwargs = {"logits_to_keep": 1} if "logits_to_keep" in forward else {}
        # transformers 5 renamed past_key_values to cache; older checkpoints' code keeps the old name.
        self._cache_argument = "cache" if "cache" in forward else "past_key_values"
        self._cache: DynamicCache | None = None
        self._mask: torch.Tensor | None = None

    def can_join(self) -> bool:
        return self._cache is None or kv_cache.supports_row_surgery(self._cache)

    def prefill(self, prompts: list[list[int]]) -> torch.Tensor:
        width = max(len(ids) for ids in prompts)
        input_ids = torch.full((len(prompts), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for row, ids in enumerate(prompts):
            input_ids[row, width - len(ids) :] = torch.tensor(ids)
            mask[row, width - len(ids) :] = 1
        input_ids, mask = input_ids.to(self.device), mask.to(self.device)
        output = self.loaded.model(
            input_ids=input_ids,
            attention_mask=mask,
            position_ids=(mask.cumsum(-1) - 1).clamp(min=0),
            use_cache=True,
            **{self._cache_argument: DynamicCache(config=self.loaded.model.config)},
            **self._logits_kwargs,
        )
        cache = _returned_cache(output)
        if self._cache is None or self._mask is None:
            self._cache, self._mask = cache, mask
        else:
            self._cache, self._mask = kv_cache.merge(self._cache, self._mask, cache, mask)
        return output.logits[:, -1, :]

    def decode(self, tokens: list[int]) -> torch.Tensor:
        assert self._mask is not None and self._cache is not None
        ones = torch.ones((self._mask.shape[0], 1), dtype=self._mask.dtype, device=self._mask.device)
        self._mask = torch.cat([self._mask, ones], dim=1)
        output = self.loaded.model(
            input_ids=torch.tensor(tokens, device=self.device).unsqueeze(1),
            attention_mask=self._mask,
            position_ids=self._mask.sum(dim=-1, keepdim=True) - 1,
            use_cache=True,
            **{self._cache_argument: self._cache},
            **self._logits_kwargs,
        )
        self._cache = _returned_cache(output)
        return output.logits[:, -1, :]

    def keep(self, rows: list[int]) -> None:
        if not rows:
            self.reset()
            return
        assert self._cache is not None and self._mask is not None
        self._mask = kv_cache.keep_rows(self._cache, self._mask, rows)

    def reset(self) -> None:
        self._cache, self._mask = None, None

    def warm_up(self) -> None:
        with torch.inference_mode():
            ids = self.loaded.tokenizer("warm up", return_tensors="pt")["input_ids"].to(self.device)
            self.loaded.model(input_ids=ids)


def _returned_cache(output: object) -> DynamicCache:
    cache = getattr(output, "cache", None)
    if cache is None:
        cache = getattr(output, "past_key_values", None)
    return cast(DynamicCache, cache)
