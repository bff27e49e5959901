"""Batch collators: pad with the model's own TextPipeline so training pads exactly as serving does."""

from __future__ import annotations

from typing import Any

import torch
from transformers import DataCollatorForSeq2Seq

from shoplm.textproc import TextPipeline
from shoplm.training.whole_words import WholeWordStarts


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


class MaskingCandidatesCollator:
    """Pads ``input_ids`` through the pipeline and labels every token the model may mask: its own id
    at text tokens, -100 at special tokens and padding. The model draws the masks itself (see
    :mod:`shoplm.modeling.masked_lm`: that keeps resumed runs exact). With ``whole_words`` the
    batch also carries ``word_starts``, so the model masks whole words."""

    def __init__(self, pipeline: TextPipeline, whole_words: bool = False) -> None:
        assert pipeline.tokenizer is not None
        self.pipeline = pipeline
        self.special_ids = torch.tensor(sorted(set(pipeline.tokenizer.all_special_ids)))
        self.word_starts = WholeWordStarts(pipeline.tokenizer, pipeline.config.segment) if whole_words else None

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        batch = self.pipeline.pad([feature["input_ids"] for feature in features])
        maskable = batch.attention_mask.bool() & ~torch.isin(batch.input_ids, self.special_ids)
        columns = {
            "input_ids": batch.input_ids,
            "attention_mask": batch.attention_mask,
            "labels": torch.where(maskable, batch.input_ids, torch.full_like(batch.input_ids, -100)),
        }
        if self.word_starts is not None:
            columns["word_starts"] = self.word_starts(batch.input_ids)
        return columns


def collator_for(task: str, pipeline: TextPipeline, whole_word_masking: bool = False) -> Any:
    """The collator for ``task``: maskable tokens for MLM and RTD (and their words, with
    ``whole_word_masking``), label padding with -100 for causal LMs."""
    tokenizer = pipeline.tokenizer
    if tokenizer is None:
        raise ValueError("training needs a pipeline with a tokenizer")
    if task == "classify":
        return ClassificationCollator(pipeline)
    if task in ("mlm", "rtd"):
        return MaskingCandidatesCollator(pipeline, whole_words=whole_word_masking)
    # Labels are padded with -100 separately from the inputs, so an EOS that doubles as the pad
    # token still counts in the loss and the model learns to stop.
    return DataCollatorForSeq2Seq(tokenizer, label_pad_token_id=-100, padding=True)
