"""Masked-LM training that runs the output head on the masked positions only.

The stock ``*ForMaskedLM`` models project every position onto the vocabulary and then ignore
the 85% that carry no label. For a small encoder that projection is a third of the work of a
training step, so here it runs on the labelled positions alone. The weights, their names and
the saved checkpoint are the stock model's; only the training forward pass differs.

The loss also honours the Trainer's ``num_items_in_batch`` (the labelled tokens of the whole
global batch): the stock models take the argument and ignore it, so under several processes
or gradient accumulation their loss was scaled by the process count and not averaged over the
accumulated micro-batches.

Masks are drawn inside ``forward`` (:class:`TokenMasking`), not in the data collator. The
Trainer's data loader collates one batch ahead of the step it trains, so a collator's random
draws run before the checkpoint that should come after them: a resumed run then masked its
first batch differently from the uninterrupted one. Drawn in ``forward``, masking takes its
random numbers at the same point as dropout, which the checkpoint's RNG state restores exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import torch
import torch.nn.functional as F
from transformers import MODEL_FOR_MASKED_LM_MAPPING, PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import MaskedLMOutput

IGNORE_INDEX = -100


@dataclass(frozen=True)
class TokenMasking:
    """BERT's masking: each candidate token is chosen with ``probability``; a chosen one becomes the
    mask token 80% of the time, a random token 10%, and stays as it is 10%.

    Takes the batch the collator makes, ``labels`` holding each maskable token's id (-100 at
    special tokens and padding), and returns the model's input and its labels (-100 wherever
    nothing was chosen). Draws from the global RNG on the inputs' device.

    With ``word_starts`` (each token's word's first position, from
    :class:`shoplm.training.whole_words.WholeWordStarts`) the draws are made per word: a chosen
    word has all its tokens chosen, with one fate for all. Each token is still chosen with
    ``probability``, so the share of masked tokens does not change.
    """

    mask_token_id: int
    vocab_size: int
    probability: float = 0.15

    def __call__(
        self, input_ids: torch.Tensor, labels: torch.Tensor, word_starts: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        candidates = labels != IGNORE_INDEX
        draw = torch.rand(labels.shape, device=labels.device)
        fate = torch.rand(labels.shape, device=labels.device)
        if word_starts is not None:
            draw, fate = draw.gather(1, word_starts), fate.gather(1, word_starts)
        chosen = candidates & (draw < self.probability)
        masked = input_ids.clone()
        masked[chosen & (fate < 0.8)] = self.mask_token_id
        randomised = chosen & (fate >= 0.9)
        random_ids = torch.randint(self.vocab_size, labels.shape, device=labels.device, dtype=input_ids.dtype)
        masked[randomised] = random_ids[randomised]
        return masked, torch.where(chosen, labels, torch.full_like(labels, IGNORE_INDEX))


def mask_for_training(
    masking: TokenMasking | None,
    input_ids: torch.Tensor | None,
    labels: torch.Tensor,
    num_items_in_batch: torch.Tensor | int | None,
    word_starts: torch.Tensor | None = None,
) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor]:
    """Masked inputs, their labels, and what to divide the loss summed over the masked tokens by.

    Without ``masking`` the batch arrives masked: the divisor is ``num_items_in_batch`` (the
    masked tokens of the global batch, counted by the Trainer) or this batch's own count. With
    ``masking``, the Trainer counted the maskable tokens before any were chosen; the divisor is
    this batch's masked count scaled by its share of the global batch's maskable tokens, so each
    micro-batch weighs what its share of the data does, across processes and accumulation.
    """
    if masking is not None:
        if input_ids is None:
            raise ValueError("masking for training needs input_ids")
        candidates = (labels != IGNORE_INDEX).sum()
        input_ids, labels = masking(input_ids, labels, word_starts)
    masked = (labels != IGNORE_INDEX).sum().clamp(min=1)
    if num_items_in_batch is None:
        return input_ids, labels, masked
    global_count = torch.as_tensor(num_items_in_batch, device=labels.device)
    if masking is None:
        return input_ids, labels, global_count
    return input_ids, labels, masked * global_count / candidates.clamp(min=1)


class MaskedPositionsLoss:
    """Mixin for a ``*ForMaskedLM`` class (BERT, RoBERTa, pre-LN RoBERTa, ModernBERT): the sparse
    training loss.

    With ``masking`` set (training does), the batches hold unmasked texts and the model masks them,
    by whole words where the batch has ``word_starts``.
    """

    masking: TokenMasking | None = None

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        num_items_in_batch: torch.Tensor | int | None = None,
        word_starts: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> MaskedLMOutput:
        if labels is None:
            parent: Any = super()
            return parent.forward(input_ids=input_ids, attention_mask=attention_mask, **kwargs)
        model: Any = self
        input_ids, labels, divisor = mask_for_training(self.masking, input_ids, labels, num_items_in_batch, word_starts)
        encoder = getattr(model, model.base_model_prefix)
        hidden = encoder(input_ids=input_ids, attention_mask=attention_mask, return_dict=True, **kwargs)[0]
        selected = labels != IGNORE_INDEX
        logits = _prediction_head(model)(hidden[selected])
        targets = labels[selected]
        loss = F.cross_entropy(logits.float(), targets, reduction="sum") / divisor
        return MaskedLMOutput(loss=loss, logits=logits)


def _prediction_head(model: Any) -> Any:
    """The layers from the encoder's hidden states to the vocabulary logits."""
    if hasattr(model, "lm_head"):  # RoBERTa, pre-LN RoBERTa
        return model.lm_head
    if hasattr(model, "cls"):  # BERT
        return model.cls
    return lambda hidden: model.decoder(model.head(hidden))  # ModernBERT


def with_masked_positions_loss(model_config: PretrainedConfig) -> type[PreTrainedModel]:
    """The masked-LM class of ``model_config``'s architecture, with the sparse training loss.

    The subclass keeps the parent's name, so a saved config still names the stock class and any
    transformers install loads the checkpoint.
    """
    model_class = cast(type[PreTrainedModel], MODEL_FOR_MASKED_LM_MAPPING[type(model_config)])
    return type(model_class.__name__, (MaskedPositionsLoss, model_class), {"__module__": __name__})
