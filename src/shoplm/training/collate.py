"""Batch collators: pad with the model's own TextPipeline so training pads exactly as serving does."""

from __future__ import annotations

from typing import Any

import torch
from transformers import DataCollatorForLanguageModeling, DataCollatorForSeq2Seq

from shoplm.textproc import TextPipeline


class ClassificationCollator:
    """Pads ``input_ids`` through the pipeline's padding config and stacks the labels."""

    def __init__(self, pipeline: TextPipeline) -> None:
        self.pipeline = pipeline

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        batch = self.pipeline.pad([feature["input_ids"] for feature in features])
        return {
            "input_ids": batch.input_ids,
            "attention_mask": batch.attention_mask,
            "labels": torch.tensor([feature["labels"] for feature in features], dtype=torch.long),
        }


def collator_for(task: str, pipeline: TextPipeline, mlm_probability: float) -> Any:
    """The collator for ``task``: masking for MLM, label padding with -100 for causal LMs."""
    tokenizer = pipeline.tokenizer
    if tokenizer is None:
        raise ValueError("training needs a pipeline with a tokenizer")
    if task == "classify":
        return ClassificationCollator(pipeline)
    if task == "mlm":
        if tokenizer.mask_token is None:
            raise ValueError("masked-LM training needs a tokenizer with a mask token")
        return DataCollatorForLanguageModeling(tokenizer, mlm=True, mlm_probability=mlm_probability)
    # Labels are padded with -100 separately from the inputs, so an EOS that doubles as the pad
    # token still counts in the loss and the model learns to stop.
    return DataCollatorForSeq2Seq(tokenizer, label_pad_token_id=-100, padding=True)
