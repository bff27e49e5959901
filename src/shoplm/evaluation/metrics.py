"""Evaluation metrics for classifiers and language models (rankers: :mod:`shoplm.evaluation.ranking`).

Pure functions over plain Python / NumPy inputs that return JSON-serializable dicts and floats
(plain ``int``/``float``/``None``, never NumPy scalars), so the results go straight into
``eval_report.json``. The arithmetic is scikit-learn's wherever scikit-learn has it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    confusion_matrix,
    log_loss,
    precision_recall_curve,
    precision_recall_fscore_support,
    roc_auc_score,
    roc_curve,
)

CALIBRATION_BINS = 10
MAX_CURVE_POINTS = 200
# Probabilities from float32 softmax rarely sum to exactly 1; this tolerance accepts those and
# still rejects logits, percentages or unnormalized scores.
_SUM_TOLERANCE = 1e-3
_RANGE_TOLERANCE = 1e-6


def classification_metrics(
    labels: Sequence[int] | np.ndarray,
    probabilities: np.ndarray | Sequence[float] | Sequence[Sequence[float]],
    label_names: list[str] | None = None,
) -> dict[str, Any]:
    """Accuracy, precision/recall/F1, ROC-AUC, PR-AUC, log loss, confusion matrix and calibration.

    ``probabilities`` is ``[N, K]`` (one row per example, rows sum to 1) or, for a binary task,
    ``[N]`` holding the probability of the positive class 1. The predicted class is the argmax
    (binary: positive when P(1) > 0.5).

    Binary tasks report precision, recall and F1 of class 1, ROC-AUC and average precision
    (``pr_auc``) of class 1, and calibration of P(1). Multi-class tasks report macro averages,
    one-vs-rest macro ROC-AUC and average precision, and top-label calibration (confidence of
    the predicted class against whether it was right). ``per_class`` holds the per-class
    figures in both cases.

    ROC-AUC and PR-AUC are ``None`` when they are undefined (only one class in ``labels``); a
    multi-class macro skips the classes missing from ``labels``. Each such case adds a line to
    ``warnings``.

    Raises:
        ValueError: empty input, lengths that differ, probabilities outside [0, 1] or rows that
            do not sum to 1, labels outside ``0..K-1``, or ``label_names`` of the wrong length.
    """
    y = _as_labels(labels)
    probs = _as_probability_matrix(probabilities, len(y))
    n_classes = probs.shape[1]
    if y.max() >= n_classes:
        raise ValueError(f"labels must lie in 0..{n_classes - 1} for {n_classes} probability columns, got {y.max()}")
    names = _label_names(label_names, n_classes)
    binary = n_classes == 2
    classes = list(range(n_classes))
    predictions = probs.argmax(axis=1)
    warnings: list[str] = []

    precision, recall, f1, support = precision_recall_fscore_support(
        y, predictions, labels=classes, average=None, zero_division=0
    )
    roc_per_class, pr_per_class = _one_vs_rest_areas(y, probs)
    if binary:
        headline = {"precision": precision[1], "recall": recall[1], "f1": f1[1]}
        headline_classes = [1]
        roc_auc, pr_auc = roc_per_class[1], pr_per_class[1]
        if roc_auc is None:
            warnings.append(
                f"only class {names[int(y[0])]!r} occurs in labels: ROC-AUC and PR-AUC are undefined and set to null"
            )
    else:
        # sklearn's own macro: the mean over the classes that occur in labels or predictions.
        macro = precision_recall_fscore_support(y, predictions, average="macro", zero_division=0)
        headline = {"precision": macro[0], "recall": macro[1], "f1": macro[2]}
        headline_classes = sorted(set(y.tolist()) | set(predictions.tolist()))
        defined = [k for k in classes if roc_per_class[k] is not None]
        if len(defined) < 2:
            roc_auc = pr_auc = None
            warnings.append("fewer than two classes occur in labels: ROC-AUC and PR-AUC are undefined and set to null")
        else:
            roc_auc = float(np.mean([roc_per_class[k] for k in defined]))
            pr_auc = float(np.mean([pr_per_class[k] for k in defined]))
            missing = [names[k] for k in classes if k not in defined]
            if missing:
                warnings.append(
                    f"classes {missing} do not occur in labels: the macro ROC-AUC and PR-AUC average over "
                    f"the {len(defined)} classes that do"
                )
    predicted_counts = np.bincount(predictions, minlength=n_classes)
    never_predicted = [names[k] for k in headline_classes if predicted_counts[k] == 0]
    if never_predicted:
        warnings.append(f"classes {never_predicted} are never predicted: their precision is undefined and set to 0")
    unsupported = [names[k] for k in headline_classes if support[k] == 0]
    if unsupported:
        warnings.append(f"classes {unsupported} do not occur in labels: their recall is undefined and set to 0")

    if binary:
        calibration = reliability(probs[:, 1], y == 1)
        calibration["kind"] = "positive_class"
    else:
        calibration = reliability(probs.max(axis=1), predictions == y)
        calibration["kind"] = "top_label"

    per_class = [
        {
            "label": k,
            "name": names[k],
            "precision": float(precision[k]),
            "recall": float(recall[k]),
            "f1": float(f1[k]),
            "support": int(support[k]),
            "roc_auc": roc_per_class[k],
            "pr_auc": pr_per_class[k],
        }
        for k in classes
    ]
    return {
        "task": "binary" if binary else "multiclass",
        "n": len(y),
        "num_classes": n_classes,
        "label_names": names,
        "accuracy": float(accuracy_score(y, predictions)),
        **{key: float(value) for key, value in headline.items()},
        "roc_auc": roc_auc,
        "pr_auc": pr_auc,
        "log_loss": float(log_loss(y, probs, labels=classes)),
        "confusion_matrix": confusion_matrix(y, predictions, labels=classes).tolist(),
        "calibration": calibration,
        "per_class": per_class,
        "warnings": warnings,
    }


def reliability(confidence: np.ndarray, outcome: np.ndarray, n_bins: int = CALIBRATION_BINS) -> dict[str, Any]:
    """Expected calibration error and reliability bins of predicted probabilities.

    ``confidence[i]`` is the predicted probability of event i and ``outcome[i]`` whether it
    happened. The bins split [0, 1] into ``n_bins`` equal widths, (lower, upper] except the
    first which includes 0 — the binning of ``sklearn.calibration.calibration_curve``, whose
    ``prob_pred``/``prob_true`` equal the non-empty bins' ``mean_predicted``/``fraction_positive``.
    ECE is the count-weighted mean of ``|fraction_positive - mean_predicted|``. Empty bins keep
    their place with ``count`` 0 and null means.
    """
    confidence = np.asarray(confidence, dtype=np.float64)
    outcome = np.asarray(outcome, dtype=np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # Not in scikit-learn with counts; same searchsorted binning as calibration_curve.
    bin_ids = np.searchsorted(edges[1:-1], confidence)
    counts = np.bincount(bin_ids, minlength=n_bins)
    confidence_sums = np.bincount(bin_ids, weights=confidence, minlength=n_bins)
    outcome_sums = np.bincount(bin_ids, weights=outcome, minlength=n_bins)
    bins = []
    ece = 0.0
    for b in range(n_bins):
        count = int(counts[b])
        mean_predicted = float(confidence_sums[b] / count) if count else None
        fraction_positive = float(outcome_sums[b] / count) if count else None
        if mean_predicted is not None and fraction_positive is not None:
            ece += count / len(confidence) * abs(fraction_positive - mean_predicted)
        # Edges rounded so the JSON reads 0.3, not linspace's 0.30000000000000004.
        bins.append(
            {
                "lower": round(float(edges[b]), 10),
                "upper": round(float(edges[b + 1]), 10),
                "mean_predicted": mean_predicted,
                "fraction_positive": fraction_positive,
                "count": count,
            }
        )
    return {"ece": float(ece), "n_bins": n_bins, "bins": bins}


def curves(
    labels: Sequence[int] | np.ndarray,
    probabilities: np.ndarray | Sequence[float] | Sequence[Sequence[float]],
    label_names: list[str] | None = None,
    max_points: int = MAX_CURVE_POINTS,
) -> dict[str, Any]:
    """ROC and precision-recall curve points, at most ``max_points`` per curve, for plots and JSON.

    Returns ``{"roc": [...], "pr": [...]}``, one entry per positive class: class 1 for a binary
    task, every class one-vs-rest for a multi-class task. A class is left out when its curve is
    undefined (it never, or always, occurs in ``labels``). ROC entries hold ``fpr``, ``tpr`` and
    ``thresholds``; PR entries hold ``precision``, ``recall`` and ``thresholds``. A threshold
    with no finite value (the ROC curve's first point, the PR curve's last) is ``None``.
    Downsampling keeps both end points; the ``auc``/``average_precision`` stored with each
    curve come from all points.

    Raises:
        ValueError: the same input errors as :func:`classification_metrics`.
    """
    y = _as_labels(labels)
    probs = _as_probability_matrix(probabilities, len(y))
    n_classes = probs.shape[1]
    names = _label_names(label_names, n_classes)
    positive_classes = [1] if n_classes == 2 else list(range(n_classes))
    roc: list[dict[str, Any]] = []
    pr: list[dict[str, Any]] = []
    for k in positive_classes:
        is_k = y == k
        if is_k.all() or not is_k.any():
            continue
        fpr, tpr, roc_thresholds = roc_curve(is_k, probs[:, k], drop_intermediate=True)
        keep = _downsample(len(fpr), max_points)
        roc.append(
            {
                "label": k,
                "name": names[k],
                "auc": float(roc_auc_score(is_k, probs[:, k])),
                "fpr": _floats(fpr[keep]),
                "tpr": _floats(tpr[keep]),
                "thresholds": _floats(roc_thresholds[keep]),
            }
        )
        precision, recall, pr_thresholds = precision_recall_curve(is_k, probs[:, k], drop_intermediate=True)
        # precision/recall have one more point than thresholds: the (recall 0, precision 1) end.
        pr_thresholds = np.append(pr_thresholds, np.nan)
        keep = _downsample(len(precision), max_points)
        pr.append(
            {
                "label": k,
                "name": names[k],
                "average_precision": float(average_precision_score(is_k, probs[:, k])),
                "precision": _floats(precision[keep]),
                "recall": _floats(recall[keep]),
                "thresholds": _floats(pr_thresholds[keep]),
            }
        )
    return {"roc": roc, "pr": pr}


def perplexity(total_nll: float, total_tokens: int) -> float:
    """Perplexity ``exp(total_nll / total_tokens)`` from a summed negative log-likelihood (nats).

    Returns ``math.inf`` when the mean loss is too large for ``exp`` (a diverged model).

    Raises:
        ValueError: ``total_tokens`` not positive, or ``total_nll`` negative or not finite.
    """
    if total_tokens <= 0:
        raise ValueError(f"total_tokens must be positive, got {total_tokens}")
    if not math.isfinite(total_nll) or total_nll < 0:
        raise ValueError(f"total_nll must be a finite, non-negative number of nats, got {total_nll}")
    try:
        return math.exp(total_nll / total_tokens)
    except OverflowError:
        return math.inf


def language_model_metrics(losses_per_batch: Sequence[float], tokens_per_batch: Sequence[int]) -> dict[str, Any]:
    """Token-weighted loss and perplexity over batches of a language-model evaluation.

    ``losses_per_batch[i]`` is the mean NLL per token of batch i (what a Hugging Face causal-LM
    forward returns as ``loss``) and ``tokens_per_batch[i]`` the number of tokens it averaged
    over. Weighting by tokens makes the result independent of how the data was batched.

    Returns ``{"loss", "perplexity", "tokens", "batches"}``.

    Raises:
        ValueError: lengths that differ, no batches, a negative token count, no tokens in all,
            or a loss that is negative or not finite.
    """
    if len(losses_per_batch) != len(tokens_per_batch):
        raise ValueError(
            f"losses_per_batch has {len(losses_per_batch)} entries but tokens_per_batch has {len(tokens_per_batch)}"
        )
    if not losses_per_batch:
        raise ValueError("no batches to evaluate")
    losses = np.asarray(losses_per_batch, dtype=np.float64)
    tokens = np.asarray(tokens_per_batch)
    if not np.issubdtype(tokens.dtype, np.integer):
        raise ValueError(f"tokens_per_batch must hold integers, got dtype {tokens.dtype}")
    if (tokens < 0).any():
        raise ValueError(f"tokens_per_batch must not be negative, got {int(tokens.min())}")
    bad = ~np.isfinite(losses) | (losses < 0)
    if bad.any():
        index = int(np.argmax(bad))
        raise ValueError(f"losses_per_batch[{index}] is {losses[index]}; losses must be finite and non-negative")
    total_tokens = int(tokens.sum())
    if total_tokens == 0:
        raise ValueError("tokens_per_batch sums to 0: no tokens were evaluated")
    total_nll = float(np.dot(losses, tokens))
    return {
        "loss": total_nll / total_tokens,
        "perplexity": perplexity(total_nll, total_tokens),
        "tokens": total_tokens,
        "batches": len(losses),
    }


def _as_labels(labels: Sequence[int] | np.ndarray) -> np.ndarray:
    y = np.asarray(labels)
    if y.ndim != 1:
        raise ValueError(f"labels must be one-dimensional, got shape {y.shape}")
    if len(y) == 0:
        raise ValueError("labels is empty: nothing to evaluate")
    if y.dtype == np.bool_:
        return y.astype(np.int64)
    if not np.issubdtype(y.dtype, np.integer):
        if not np.issubdtype(y.dtype, np.floating) or not np.all(np.mod(y, 1) == 0):
            raise ValueError(f"labels must be integer class ids, got dtype {y.dtype}")
        y = y.astype(np.int64)
    if y.min() < 0:
        raise ValueError(f"labels must be non-negative class ids, got {y.min()}")
    return y


def _as_probability_matrix(probabilities: Any, n_labels: int) -> np.ndarray:
    probs = np.asarray(probabilities, dtype=np.float64)
    if probs.ndim == 1:
        probs = np.stack([1.0 - probs, probs], axis=1)
        one_dimensional = True
    elif probs.ndim == 2:
        one_dimensional = False
    else:
        raise ValueError(f"probabilities must have shape [N] or [N, K], got {probs.shape}")
    if len(probs) != n_labels:
        raise ValueError(f"labels has {n_labels} entries but probabilities has {len(probs)}")
    if probs.shape[1] < 2:
        raise ValueError(f"probabilities needs at least 2 columns (one per class), got {probs.shape[1]}")
    if not np.isfinite(probs).all():
        raise ValueError("probabilities contains NaN or infinite values")
    low, high = probs.min(), probs.max()
    if low < -_RANGE_TOLERANCE or high > 1 + _RANGE_TOLERANCE:
        raise ValueError(f"probabilities must lie in [0, 1], got values in [{low:g}, {high:g}]")
    probs = np.clip(probs, 0.0, 1.0)
    if not one_dimensional:
        sums = probs.sum(axis=1)
        bad = np.abs(sums - 1.0) > _SUM_TOLERANCE
        if bad.any():
            row = int(np.argmax(bad))
            raise ValueError(
                f"each probabilities row must sum to 1; row {row} sums to {sums[row]:g} "
                f"({int(bad.sum())} rows are off by more than {_SUM_TOLERANCE})"
            )
        # Rows within the tolerance are renormalized: sklearn's log_loss warns on float32 rounding.
        probs = probs / probs.sum(axis=1, keepdims=True)
    return probs


def _label_names(label_names: list[str] | None, n_classes: int) -> list[str]:
    if label_names is None:
        return [str(k) for k in range(n_classes)]
    if len(label_names) != n_classes:
        raise ValueError(f"label_names has {len(label_names)} names but probabilities has {n_classes} classes")
    return [str(name) for name in label_names]


def _one_vs_rest_areas(y: np.ndarray, probs: np.ndarray) -> tuple[list[float | None], list[float | None]]:
    """ROC-AUC and average precision of each class against the rest; None where undefined."""
    roc: list[float | None] = []
    pr: list[float | None] = []
    for k in range(probs.shape[1]):
        is_k = y == k
        if is_k.all() or not is_k.any():
            roc.append(None)
            pr.append(None)
            continue
        roc.append(float(roc_auc_score(is_k, probs[:, k])))
        pr.append(float(average_precision_score(is_k, probs[:, k])))
    return roc, pr


def _downsample(n_points: int, max_points: int) -> np.ndarray:
    if n_points <= max_points:
        return np.arange(n_points)
    return np.unique(np.linspace(0, n_points - 1, max_points).round().astype(int))


def _floats(values: np.ndarray) -> list[float | None]:
    return [float(v) if math.isfinite(v) else None for v in values.tolist()]
