"""A sequence classifier with an n-gram bag beside its transformer ("wide and deep").

The logits are the sum of two parts trained together:

* the backbone: any transformers sequence classifier (e.g. a pre-LN RoBERTa pretrained with MLM);
* the n-gram bag: every n-gram of token ids (orders 1 to 3 by default) is hashed into a table of
  per-label weights, and a text's weights are summed and divided by the square root of its
  n-gram count. With one token per Chinese character these are character n-grams, the features
  of the classic TF-IDF + logistic regression baseline. With ``ngram_presence`` each distinct
  n-gram of a text counts once, however often it occurs (binary features, as in NBSVM).

On small data the bag learns surface cues (words, negations) in one epoch, while the backbone,
pretrained from scratch on little text, learns context more slowly; their sum beats either.
The hashing runs inside ``forward`` on ``input_ids``, so the model takes the same inputs as any
classifier and the server needs nothing new.

The classes are registered with transformers' Auto classes when this module is imported (see
``shoplm.modeling``), so ``AutoModelForSequenceClassification.from_pretrained`` loads a saved one.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import (
    AutoConfig,
    AutoModelForSequenceClassification,
    PretrainedConfig,
    PreTrainedModel,
)
from transformers.modeling_outputs import SequenceClassifierOutput

from shoplm.modeling.positions import usable_positions

MODEL_TYPE = "shoplm-ngram-classifier"
_HASH_MULTIPLIER = 1_000_003  # a prime: consecutive ids spread over the buckets


class NgramBagConfig(PretrainedConfig):
    """A backbone classifier's config plus the n-gram bag's settings."""

    model_type = MODEL_TYPE
    has_no_defaults_at_init = True

    def __init__(
        self,
        backbone: dict[str, Any] | PretrainedConfig | None = None,
        ngram_orders: list[int] | None = None,
        ngram_buckets: int = 1 << 20,
        ngram_lr_scale: float = 100.0,
        ngram_presence: bool = False,
        backbone_head_fraction: float = 0.5,
        **kwargs: Any,
    ) -> None:
        if isinstance(backbone, dict):
            backbone = AutoConfig.for_model(**backbone)
        self.backbone = backbone
        self.ngram_orders = list(ngram_orders or [1, 2, 3])
        self.ngram_buckets = ngram_buckets
        self.ngram_lr_scale = ngram_lr_scale
        self.ngram_presence = ngram_presence
        self.backbone_head_fraction = backbone_head_fraction
        if backbone is not None:
            for key in ("num_labels", "id2label", "label2id", "pad_token_id"):
                kwargs.setdefault(key, getattr(backbone, key))
        super().__init__(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        output = super().to_dict()
        if isinstance(self.backbone, PretrainedConfig):
            output["backbone"] = self.backbone.to_dict()
        return output


class NgramBagForSequenceClassification(PreTrainedModel):
    """Backbone logits plus hashed n-gram bag logits."""

    config_class = NgramBagConfig
    base_model_prefix = "backbone"

    def __init__(self, config: NgramBagConfig, backbone: PreTrainedModel | None = None) -> None:
        super().__init__(config)
        if backbone is None:
            assert isinstance(config.backbone, PretrainedConfig)
            backbone = AutoModelForSequenceClassification.from_config(config.backbone)
        self.backbone = backbone
        self.ngram_weights = nn.Embedding(config.ngram_buckets, int(config.num_labels or 2))
        nn.init.zeros_(self.ngram_weights.weight)
        self.post_init()

    @classmethod
    def wrapping(cls, backbone: PreTrainedModel, **settings: Any) -> NgramBagForSequenceClassification:
        """A new n-gram bag (all zeros) beside an existing, e.g. freshly pretrained, backbone."""
        return cls(NgramBagConfig(backbone=backbone.config, **settings), backbone=backbone)

    def _init_weights(self, module: nn.Module) -> None:
        if module is getattr(self, "ngram_weights", None):
            nn.init.zeros_(module.weight)

    def get_input_embeddings(self) -> nn.Module:
        return self.backbone.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.backbone.set_input_embeddings(value)

    def ngram_logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Per-label sums of the weights of each row's hashed n-grams, over sqrt(n-gram count).

        With ``ngram_presence`` a row's repeated n-grams (equal hashes) are counted once.
        """
        config = self.config
        buckets = config.ngram_buckets
        total = torch.zeros(input_ids.shape[0], self.ngram_weights.embedding_dim, device=input_ids.device)
        count = torch.zeros(input_ids.shape[0], device=input_ids.device)
        valid = attention_mask.bool()
        ids = input_ids.long()
        for order in config.ngram_orders:
            if ids.shape[1] < order:
                continue
            width = ids.shape[1] - order + 1
            hashed = torch.full_like(ids[:, :width], order)  # the order seeds the hash: no cross-order clashes
            inside = valid[:, :width].clone()
            for offset in range(order):
                hashed = (hashed * _HASH_MULTIPLIER + ids[:, offset : offset + width]) % buckets
                inside &= valid[:, offset : offset + width]
            if config.ngram_presence:
                hashed, inside = _first_occurrences(hashed, inside)
            weights = self.ngram_weights(hashed) * inside.unsqueeze(-1)
            total = total + weights.sum(dim=1).float()
            count = count + inside.sum(dim=1)
        # Adam moves every weight by about the learning rate per step, whatever its gradient's
        # scale; scaling the bag's output gives it a learning rate ngram_lr_scale times the
        # backbone's, which a linear model over sparse counts needs.
        return config.ngram_lr_scale * total / count.clamp(min=1).sqrt().unsqueeze(-1)

    def backbone_view(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The inputs cut to what the backbone's positions take: each longer row keeps its head and
        its tail (``backbone_head_fraction`` of the limit from the start, the rest from the end).

        The bag reads the whole text, so a review longer than the backbone's positions still counts
        every n-gram. Rows may be padded on either side.
        """
        limit = usable_positions(self.backbone.config)
        width = input_ids.shape[1]
        if limit is None or width <= limit:
            return input_ids, attention_mask
        lengths = attention_mask.sum(dim=1, keepdim=True)
        first = (attention_mask.cumsum(dim=1) == 0).sum(dim=1, keepdim=True)  # left padding, if any
        # A short row's window holds all of it; a long row's starts at its first token.
        base = first.clamp(max=width - limit)
        head = max(1, int(limit * self.config.backbone_head_fraction))
        index = torch.arange(limit, device=input_ids.device).expand(input_ids.shape[0], limit)
        index = base + torch.where(index < head, index, index + (lengths - limit).clamp(min=0))
        return input_ids.gather(1, index), attention_mask.gather(1, index)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> SequenceClassifierOutput:
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        kwargs.pop("num_items_in_batch", None)
        backbone_ids, backbone_mask = self.backbone_view(input_ids, attention_mask)
        output = self.backbone(input_ids=backbone_ids, attention_mask=backbone_mask, **kwargs)
        # One loss on the sum: the two parts learn what the other misses (training each part as a
        # classifier of its own and averaging them scored lower on the review validation split).
        logits = output.logits.float() + self.ngram_logits(input_ids, attention_mask)
        loss = F.cross_entropy(logits, labels) if labels is not None else None
        return SequenceClassifierOutput(loss=loss, logits=logits)


def _first_occurrences(hashed: torch.Tensor, inside: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each row's hashes sorted, with ``inside`` true only on the first of each distinct value."""
    # Padding sorts first as -1 and is dropped; the order of a row's n-grams does not matter to a sum.
    ordered = torch.where(inside, hashed, torch.full_like(hashed, -1)).sort(dim=1).values
    first = torch.ones_like(inside)
    first[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    return ordered.clamp(min=0), first & (ordered >= 0)


def register() -> None:
    """Make the Auto classes know the n-gram classifier (idempotent)."""
    try:
        AutoConfig.register(MODEL_TYPE, NgramBagConfig)
        AutoModelForSequenceClassification.register(NgramBagConfig, NgramBagForSequenceClassification)
    except ValueError:  # already registered
        pass
