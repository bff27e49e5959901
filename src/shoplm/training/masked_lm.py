"""Masked-LM training that runs the output head on the masked positions only.

The stock ``*ForMaskedLM`` models project every position onto the vocabulary and then ignore
the 85% that carry no label. For a small encoder that projection is a third of the work of a
training step, so here it runs on the labelled positions alone. The weights, their names and
the saved checkpoint are the stock model's; only the training forward pass differs.

The loss also honours the Trainer's ``num_items_in_batch`` (the labelled tokens of the whole
global batch): the stock models take the argument and ignore it, so under several processes
or gradient accumulation their loss was scaled by the process count and not averaged over the
accumulated micro-batches.
"""

from __future__ import annotations

from typing import Any, cast

import torch
import torch.nn.functional as F
from transformers import MODEL_FOR_MASKED_LM_MAPPING, PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import MaskedLMOutput

IGNORE_INDEX = -100


class MaskedPositionsLoss:
    """Mixin for a ``*ForMaskedLM`` class (BERT, RoBERTa, pre-LN RoBERTa): the sparse training loss."""

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        num_items_in_batch: torch.Tensor | int | None = None,
        **kwargs: Any,
    ) -> MaskedLMOutput:
        if labels is None:
            parent: Any = super()
            return parent.forward(input_ids=input_ids, attention_mask=attention_mask, **kwargs)
        model: Any = self
        encoder = getattr(model, model.base_model_prefix)
        hidden = encoder(input_ids=input_ids, attention_mask=attention_mask, return_dict=True, **kwargs)[0]
        selected = labels != IGNORE_INDEX
        head = model.lm_head if hasattr(model, "lm_head") else model.cls
        logits = head(hidden[selected])
        targets = labels[selected]
        if num_items_in_batch is None:
            loss = F.cross_entropy(logits.float(), targets)
        else:
            total = F.cross_entropy(logits.float(), targets, reduction="sum")
            loss = total / torch.as_tensor(num_items_in_batch, device=total.device, dtype=total.dtype)
        return MaskedLMOutput(loss=loss, logits=logits)


def with_masked_positions_loss(model_config: PretrainedConfig) -> type[PreTrainedModel]:
    """The masked-LM class of ``model_config``'s architecture, with the sparse training loss.

    The subclass keeps the parent's name, so a saved config still names the stock class and any
    transformers install loads the checkpoint.
    """
    model_class = cast(type[PreTrainedModel], MODEL_FOR_MASKED_LM_MAPPING[type(model_config)])
    return type(model_class.__name__, (MaskedPositionsLoss, model_class), {"__module__": __name__})
