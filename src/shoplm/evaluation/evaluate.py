"""Run a trained model over labelled or plain text and measure it.

Classifiers get the full classification metrics (accuracy ... calibration); causal language
models get perplexity; masked language models the perplexity and top-1 accuracy of masked tokens.
Texts go through the model's saved TextPipeline, exactly as in serving.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForMaskedLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
)

import shoplm.modeling  # noqa: F401  (registers shoplm's architectures with the Auto classes)
from shoplm.data.labels import class_id_of
from shoplm.evaluation.metrics import classification_metrics, language_model_metrics
from shoplm.textproc import PreprocessConfig, TextPipeline


class EvaluationError(ValueError):
    """The model or the data cannot be evaluated; the message names the file or field."""


@dataclass
class Evaluation:
    """Metrics of one model on one dataset, plus what the report plots."""

    kind: str  # "classifier", "language_model" or "masked_language_model"
    metrics: dict[str, Any]
    labels: list[int] = field(default_factory=list)
    probabilities: np.ndarray | None = None


# Masked-LM evaluation masks this share of each text's tokens (at least one), with a fixed seed so
# that a figure repeats and two models are measured on the same masks.
EVAL_MASK_PROBABILITY = 0.15
EVAL_MASK_SEED = 0


def model_kind(model_dir: Path) -> str:
    """'classifier', 'language_model' or 'masked_language_model', from the checkpoint's architecture."""
    if not (model_dir / "config.json").is_file():
        raise EvaluationError(f"no model at {model_dir} (config.json missing)")
    architectures = AutoConfig.from_pretrained(model_dir).architectures or []
    if any(name.endswith("ForSequenceClassification") for name in architectures):
        return "classifier"
    if any(name.endswith("ForCausalLM") or name.endswith("LMHeadModel") for name in architectures):
        return "language_model"
    if any(name.endswith("ForMaskedLM") for name in architectures):
        return "masked_language_model"
    raise EvaluationError(
        f"{model_dir}: cannot evaluate architecture {architectures or 'unknown'}; shoplm eval measures "
        "sequence classifiers, causal LMs and masked LMs (an rtd run is measured by fine-tuning it)"
    )


def read_jsonl(path: Path, fields: list[str]) -> list[dict[str, Any]]:
    """Rows of a JSON-lines file, each checked to hold ``fields``, the first of them a string."""
    if not path.is_file():
        raise EvaluationError(f"data file not found: {path}")
    rows = []
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as error:
                raise EvaluationError(f"{path}:{number}: not UTF-8 text ({error.reason})") from None
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as error:
                raise EvaluationError(f"{path}:{number}: not JSON ({error})") from None
            missing = [name for name in fields if not isinstance(row, dict) or name not in row]
            if missing:
                raise EvaluationError(f"{path}:{number}: no field {', '.join(map(repr, missing))}")
            if not isinstance(row[fields[0]], str):
                raise EvaluationError(f"{path}:{number}: field {fields[0]!r} holds {row[fields[0]]!r}, not a text")
            rows.append(row)
    if not rows:
        raise EvaluationError(f"{path}: no rows")
    return rows


def evaluate(
    model_dir: Path, data: Path, *, text_field: str = "text", label_field: str = "label", batch_size: int = 64
) -> Evaluation:
    """Measure the model in ``model_dir`` on the JSON-lines file ``data``."""
    kind = model_kind(model_dir)
    if kind == "classifier":
        rows = read_jsonl(data, [text_field, label_field])
        return _evaluate_classifier(model_dir, data, rows, text_field, label_field, batch_size)
    rows = read_jsonl(data, [text_field])
    texts = [row[text_field] for row in rows if row[text_field].strip()]
    if kind == "masked_language_model":
        evaluation = _evaluate_masked_language_model(model_dir, texts, batch_size)
    else:
        evaluation = _evaluate_language_model(model_dir, texts, batch_size)
    # Said in the report, so that n and the figures are read as what was measured.
    evaluation.metrics["skipped_blank"] = len(rows) - len(texts)
    return evaluation


def _pipeline(model_dir: Path) -> TextPipeline:
    preprocessing = (
        PreprocessConfig.load(model_dir) if (model_dir / "preprocessing.json").is_file() else PreprocessConfig()
    )
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return TextPipeline(preprocessing, tokenizer)


def _batches(items: list[Any], size: int) -> Iterator[list[Any]]:
    # A progress bar on stderr when it is a terminal; --json output on stdout stays one line.
    with tqdm(total=len(items), unit="text", desc="evaluating", disable=None, leave=False) as progress:
        for start in range(0, len(items), size):
            yield items[start : start + size]
            progress.update(min(size, len(items) - start))


@torch.inference_mode()
def _evaluate_classifier(
    model_dir: Path, data: Path, rows: list[dict[str, Any]], text_field: str, label_field: str, batch_size: int
) -> Evaluation:
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    pipeline = _pipeline(model_dir)
    names = [model.config.id2label[i] for i in range(model.config.num_labels)]
    labels = []
    for number, row in enumerate(rows, start=1):
        label = class_id_of(row[label_field], names)
        if label is None:
            raise EvaluationError(
                f"{data}, row {number}: label {row[label_field]!r} is neither a class id 0..{len(names) - 1} "
                f"nor one of the model's class names ({', '.join(names)})"
            )
        labels.append(label)
    chunks = []
    for batch in _batches([row[text_field] for row in rows], batch_size):
        encoded = pipeline.encode(batch)
        logits = model(input_ids=encoded.input_ids, attention_mask=encoded.attention_mask).logits
        chunks.append(torch.softmax(logits.float(), dim=-1).numpy())
    probabilities = np.concatenate(chunks).astype(np.float64)
    metrics = classification_metrics(labels, probabilities, label_names=names)
    return Evaluation("classifier", metrics, labels, probabilities)


@torch.inference_mode()
def _evaluate_language_model(model_dir: Path, texts: list[str], batch_size: int) -> Evaluation:
    """Perplexity over ``texts`` (none of them blank)."""
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    pipeline = _pipeline(model_dir)
    eos = pipeline.tokenizer.eos_token_id if pipeline.tokenizer is not None else None
    losses, counts, truncated = [], [], 0
    for batch in _batches(texts, batch_size):
        sequences = []
        for ids, cut in pipeline.token_ids_batch(batch):
            truncated += cut
            if eos is not None and ids[-1:] != [eos]:
                ids = [*ids[: pipeline.token_limit - 1], eos]  # the same framing training used
            sequences.append(ids)
        encoded = pipeline.pad(sequences)
        logits = model(input_ids=encoded.input_ids, attention_mask=encoded.attention_mask).logits.float()
        targets = encoded.input_ids[:, 1:].masked_fill(encoded.attention_mask[:, 1:] == 0, -100)
        nll = torch.nn.functional.cross_entropy(
            logits[:, :-1].reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=-100, reduction="sum"
        )
        tokens = int((targets != -100).sum())
        losses.append(float(nll) / max(tokens, 1))
        counts.append(tokens)
    if not counts:
        raise EvaluationError("no non-empty texts to measure perplexity on")
    metrics = {**language_model_metrics(losses, counts), "n": len(texts), "truncated": truncated}
    return Evaluation("language_model", metrics)


@torch.inference_mode()
def _evaluate_masked_language_model(model_dir: Path, texts: list[str], batch_size: int) -> Evaluation:
    model = AutoModelForMaskedLM.from_pretrained(model_dir).eval()
    pipeline = _pipeline(model_dir)
    tokenizer = pipeline.tokenizer
    if tokenizer is None or tokenizer.mask_token_id is None:
        raise EvaluationError(f"{model_dir}: the tokenizer has no mask token")
    special = set(tokenizer.all_special_ids)
    # One generator drawn row by row in order: the masks do not depend on the batch size.
    rng = np.random.default_rng(EVAL_MASK_SEED)
    losses, counts, correct, measured, truncated = [], [], 0, 0, 0
    for batch in _batches(texts, batch_size):
        inputs, targets = [], []
        for ids, cut in pipeline.token_ids_batch(batch):
            truncated += cut
            draw = rng.random(len(ids))
            candidates = np.array([token not in special for token in ids])
            if not candidates.any():
                continue
            chosen = candidates & (draw < EVAL_MASK_PROBABILITY)
            if not chosen.any():
                chosen[np.flatnonzero(candidates)[np.argmin(draw[candidates])]] = True
            measured += 1
            inputs.append([tokenizer.mask_token_id if pick else token for token, pick in zip(ids, chosen, strict=True)])
            targets.append([token if pick else -100 for token, pick in zip(ids, chosen, strict=True)])
        if not inputs:
            continue
        encoded = pipeline.pad(inputs)
        labels = pipeline.pad(targets).input_ids.masked_fill(encoded.attention_mask == 0, -100)
        logits = model(input_ids=encoded.input_ids, attention_mask=encoded.attention_mask).logits.float()
        masked = labels != -100
        nll = torch.nn.functional.cross_entropy(logits[masked], labels[masked], reduction="sum")
        tokens = int(masked.sum())
        correct += int((logits[masked].argmax(dim=-1) == labels[masked]).sum())
        losses.append(float(nll) / tokens)
        counts.append(tokens)
    if not counts:
        raise EvaluationError("no texts with tokens to mask")
    metrics = language_model_metrics(losses, counts)
    metrics["masked_accuracy"] = correct / sum(counts)
    metrics["mask_probability"] = EVAL_MASK_PROBABILITY
    metrics["n"] = measured
    metrics["truncated"] = truncated
    return Evaluation("masked_language_model", metrics)
