"""Replaced-token detection (ELECTRA): pretraining an encoder on every token, not only the masked.

A small generator (a masked LM) fills in the masked positions of a text with tokens it samples;
the discriminator, the encoder being pretrained, reads the result and tells for every token
whether it is the original or a replacement. Masked-LM pretraining learns from the 15% of the
tokens that are masked; the discriminator's loss covers all of them, which makes a small
compute budget go further (Clark et al., 2020, "ELECTRA: Pre-training Text Encoders as
Discriminators Rather Than Generators"). On the review corpus, in the same 20 minutes on two
CPU cores, it did not beat masked-LM pretraining (benchmarks/sentiment_experiments.md).

The generator is the discriminator's architecture with fewer layers and shares its embeddings
(token, position and their normalisation), as ELECTRA ties them; its output projection is the
shared token embedding matrix, so the generator's softmax trains every token's embedding. The
pair is only a training device: a run keeps the discriminator, saved as a plain token classifier
of its architecture, which any sequence classifier of that architecture loads as its encoder.
"""

from __future__ import annotations

import copy
from typing import Any, cast

import torch
import torch.nn.functional as F
from transformers import AutoConfig, AutoModelForTokenClassification, PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import TokenClassifierOutput

from shoplm.modeling.masked_lm import IGNORE_INDEX, TokenMasking, mask_for_training, with_masked_positions_loss

MODEL_TYPE = "shoplm-replaced-token-detection"


class ReplacedTokenDetectionConfig(PretrainedConfig):
    """The discriminator's config, the generator's depth and width, and the loss weighting."""

    model_type = MODEL_TYPE
    has_no_defaults_at_init = True

    def __init__(
        self,
        discriminator: dict[str, Any] | PretrainedConfig | None = None,
        generator_layers: int = 1,
        generator_intermediate_size: int | None = None,
        discriminator_weight: float = 50.0,
        **kwargs: Any,
    ) -> None:
        if isinstance(discriminator, dict):
            discriminator = AutoConfig.for_model(**discriminator)
        self.discriminator = discriminator
        self.generator_layers = generator_layers
        self.generator_intermediate_size = generator_intermediate_size
        self.discriminator_weight = discriminator_weight
        if discriminator is not None:
            kwargs.setdefault("pad_token_id", discriminator.pad_token_id)
        super().__init__(**kwargs)

    def generator_config(self) -> PretrainedConfig:
        """The discriminator's config with the generator's depth and feed-forward width."""
        assert isinstance(self.discriminator, PretrainedConfig)
        config = copy.deepcopy(self.discriminator)
        config.num_hidden_layers = self.generator_layers
        if self.generator_intermediate_size is not None:
            config.intermediate_size = self.generator_intermediate_size
        return config

    def to_dict(self) -> dict[str, Any]:
        output = super().to_dict()
        if isinstance(self.discriminator, PretrainedConfig):
            output["discriminator"] = self.discriminator.to_dict()
        return output


class ReplacedTokenDetectionModel(PreTrainedModel):
    """Generator and discriminator trained together on one loss:
    generator masked-LM loss + ``discriminator_weight`` x per-token replaced/original loss.

    Takes masked batches (``input_ids`` with masked positions, ``labels`` holding the original
    token there and -100 elsewhere), or, with ``masking`` set as training does, unmasked ones
    to mask itself (see :mod:`shoplm.modeling.masked_lm`).
    """

    masking: TokenMasking | None = None

    config_class = ReplacedTokenDetectionConfig
    base_model_prefix = "discriminator"
    # Trainer passes num_items_in_batch (the labelled tokens of the global batch) to scale the loss.
    accepts_loss_kwargs = True

    def __init__(self, config: ReplacedTokenDetectionConfig) -> None:
        super().__init__(config)
        assert isinstance(config.discriminator, PretrainedConfig)
        discriminator_config = copy.deepcopy(config.discriminator)
        discriminator_config.num_labels = 1  # one logit a token: replaced or not
        self.discriminator = AutoModelForTokenClassification.from_config(discriminator_config)
        generator_config = config.generator_config()
        self.generator = with_masked_positions_loss(generator_config)._from_config(generator_config)
        prefix = self.discriminator.base_model_prefix
        shared = getattr(self.discriminator, prefix).embeddings
        getattr(self.generator, prefix).embeddings = shared
        self.generator.get_output_embeddings().weight = shared.word_embeddings.weight
        # save_pretrained writes a shared tensor once and the loader ties it again from these names.
        self._tied_weights_keys = {
            f"generator.{prefix}.embeddings.{name}": f"discriminator.{prefix}.embeddings.{name}"
            for name, _ in shared.named_parameters()
        }
        self.post_init()

    def get_input_embeddings(self) -> torch.nn.Module:
        return cast(torch.nn.Module, self.discriminator.get_input_embeddings())

    def set_input_embeddings(self, value: torch.nn.Module) -> None:
        self.discriminator.set_input_embeddings(value)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        num_items_in_batch: torch.Tensor | int | None = None,
        word_starts: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> TokenClassifierOutput:
        if labels is None:
            raise ValueError("replaced-token detection trains on masked batches: labels are required")
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        masked_ids, labels, divisor = mask_for_training(
            self.masking, input_ids, labels, num_items_in_batch, word_starts
        )
        assert masked_ids is not None
        input_ids = masked_ids
        generated = self.generator(input_ids=input_ids, attention_mask=attention_mask, labels=labels,
                                   num_items_in_batch=divisor)
        masked = labels != IGNORE_INDEX
        corrupted, replaced = corrupt(input_ids, labels, generated.logits)
        token_logits = self.discriminator(input_ids=corrupted, attention_mask=attention_mask).logits.squeeze(-1)
        real = attention_mask.bool()
        detection = F.binary_cross_entropy_with_logits(token_logits[real].float(), replaced[real].float())
        # The generator's loss is its summed loss over this batch's masked tokens divided by
        # ``divisor``; weighting the detection mean by the same share keeps the two in step
        # across processes and accumulated micro-batches (share 1 for a lone batch).
        detection = detection * masked.sum() / divisor
        loss = generated.loss + self.config.discriminator_weight * detection
        return TokenClassifierOutput(loss=loss, logits=token_logits)


@torch.no_grad()
def corrupt(
    input_ids: torch.Tensor, labels: torch.Tensor, generator_logits: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The discriminator's input and targets: each masked position holds a token sampled from the
    generator's logits (one row per masked position, in order); ``replaced`` is True where that
    token differs from the original (a correct guess counts as original, as in ELECTRA).

    Sampled rather than the most likely token: the generator's guesses must sometimes be
    plausible and wrong, or the discriminator has little to detect.
    """
    masked = labels != IGNORE_INDEX
    sampled = torch.distributions.Categorical(logits=generator_logits.float()).sample()
    corrupted = input_ids.clone()
    corrupted[masked] = sampled.to(corrupted.dtype)
    original = torch.where(masked, labels, input_ids)
    return corrupted, corrupted != original


def replaced_token_detection(discriminator_config: PretrainedConfig, **settings: Any) -> ReplacedTokenDetectionModel:
    """A new generator/discriminator pair whose discriminator has ``discriminator_config``."""
    return ReplacedTokenDetectionModel(ReplacedTokenDetectionConfig(discriminator=discriminator_config, **settings))
