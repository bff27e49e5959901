"""Model runner for the encoder tasks: one padded batch in, one result per row out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from shoplm.config import ModelConfig
from shoplm.serving.loading import LoadedModel
from shoplm.textproc import EncodedBatch


@dataclass(frozen=True)
class MaskPrediction:
    """One candidate for one mask position."""

    token: str
    token_id: int
    score: float


class EncoderRunner:
    """Runs ``embed``, ``classify`` and ``fill-mask`` forward passes on a padded batch."""

    def __init__(self, loaded: LoadedModel, config: ModelConfig) -> None:
        self.loaded = loaded
        self.config = config
        self.task = config.task
        labels = getattr(loaded.model.config, "id2label", None) or {}
        self.labels = [str(labels.get(i, f"LABEL_{i}")) for i in range(len(labels))]
        self.mask_token_id = loaded.tokenizer.mask_token_id

    @property
    def embedding_dim(self) -> int:
        return int(self.loaded.model.config.hidden_size)

    @torch.inference_mode()
    def run(self, batch: EncodedBatch, options: list[dict[str, Any]]) -> list[Any]:
        """Forward ``batch``; ``options[i]`` carries per-row settings (``top_k`` for fill-mask)."""
        device = self.loaded.device
        input_ids = batch.input_ids.to(device)
        attention_mask = batch.attention_mask.to(device)
        outputs = self.loaded.model(input_ids=input_ids, attention_mask=attention_mask)
        if self.task == "embed":
            return list(self._pool(outputs.last_hidden_state, attention_mask))
        if self.task == "classify":
            probabilities = torch.softmax(outputs.logits.float(), dim=-1).cpu().numpy()
            return list(probabilities)
        return self._fill_masks(input_ids, outputs.logits, options)

    def _pool(self, hidden: torch.Tensor, mask: torch.Tensor) -> np.ndarray:
        if self.config.embedding.pooling == "cls":
            pooled = hidden[:, 0]
        else:
            weights = mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)
        pooled = pooled.float()
        if self.config.embedding.normalize:
            pooled = torch.nn.functional.normalize(pooled, p=2, dim=-1)
        return pooled.cpu().numpy()

    def _fill_masks(
        self, input_ids: torch.Tensor, logits: torch.Tensor, options: list[dict[str, Any]]
    ) -> list[list[list[MaskPrediction]]]:
        tokenizer = self.loaded.tokenizer
        results: list[list[list[MaskPrediction]]] = []
        for row, row_options in enumerate(options):
            top_k = int(row_options.get("top_k", 5))
            positions = (input_ids[row] == self.mask_token_id).nonzero().flatten().tolist()
            per_mask = []
            for position in positions:
                probabilities = torch.softmax(logits[row, position].float(), dim=-1)
                scores, ids = probabilities.topk(top_k)
                per_mask.append(
                    [
                        MaskPrediction(str(tokenizer.decode([int(i)])).strip(), int(i), float(s))
                        for s, i in zip(scores.tolist(), ids.tolist(), strict=True)
                    ]
                )
            results.append(per_mask)
        return results
