"""Classification, language-model and ranking metrics against hand-computed values."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from sklearn.calibration import calibration_curve
from sklearn.metrics import roc_auc_score

from shoplm.evaluation import (
    classification_metrics,
    curves,
    language_model_metrics,
    mrr,
    ndcg_at_k,
    perplexity,
    recall_at_k,
)


def softmax_rows(rng: np.random.Generator, labels: np.ndarray, n_classes: int) -> np.ndarray:
    logits = rng.normal(size=(len(labels), n_classes))
    logits[np.arange(len(labels)), labels] += 1.0
    probs = np.exp(logits)
    return probs / probs.sum(axis=1, keepdims=True)


# --- binary ----------------------------------------------------------------------------------


def test_perfect_binary_classifier() -> None:
    result = classification_metrics([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9])
    assert result["task"] == "binary"
    assert result["n"] == 4
    assert result["accuracy"] == result["precision"] == result["recall"] == result["f1"] == 1.0
    assert result["roc_auc"] == 1.0
    assert result["pr_auc"] == 1.0
    assert result["confusion_matrix"] == [[2, 0], [0, 2]]
    assert result["label_names"] == ["0", "1"]
    assert result["warnings"] == []


def test_binary_known_confusion_matrix() -> None:
    # Threshold 0.5: predictions 0, 1, 1, 0, 1, 1 against labels 0, 0, 1, 1, 1, 1.
    labels = [0, 0, 1, 1, 1, 1]
    probs = [0.2, 0.6, 0.7, 0.4, 0.9, 0.8]
    result = classification_metrics(labels, probs, label_names=["neg", "pos"])
    assert result["confusion_matrix"] == [[1, 1], [1, 3]]
    assert result["accuracy"] == pytest.approx(4 / 6)
    assert result["precision"] == pytest.approx(3 / 4)  # tp 3, fp 1
    assert result["recall"] == pytest.approx(3 / 4)  # tp 3, fn 1
    assert result["f1"] == pytest.approx(3 / 4)
    # Positive/negative pairs ranked right: 0.2 is below all four positives (4), 0.6 is below
    # 0.7, 0.9, 0.8 and above 0.4 (3): 7 of 8.
    assert result["roc_auc"] == pytest.approx(7 / 8)
    # Ranked by score: 0.9+ 0.8+ 0.7+ 0.6- 0.4+ 0.2-. AP = mean precision at each positive.
    assert result["pr_auc"] == pytest.approx((1 + 1 + 1 + 4 / 5) / 4)
    expected_log_loss = -np.mean(np.log([0.8, 0.4, 0.7, 0.4, 0.9, 0.8]))
    assert result["log_loss"] == pytest.approx(expected_log_loss)
    per_class = {row["name"]: row for row in result["per_class"]}
    assert per_class["neg"]["support"] == 2
    assert per_class["neg"]["precision"] == pytest.approx(1 / 2)
    assert per_class["pos"]["support"] == 4


def test_binary_vector_and_two_column_matrix_agree() -> None:
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 200)
    positive = np.clip(labels * 0.3 + rng.random(200) * 0.7, 0, 1)
    from_vector = classification_metrics(labels, positive)
    from_matrix = classification_metrics(labels, np.stack([1 - positive, positive], axis=1))
    assert from_vector.keys() == from_matrix.keys()
    for key in ("accuracy", "precision", "recall", "f1", "roc_auc", "pr_auc", "log_loss"):
        assert from_vector[key] == pytest.approx(from_matrix[key]), key
    assert from_vector["confusion_matrix"] == from_matrix["confusion_matrix"]
    assert from_vector["calibration"] == from_matrix["calibration"]


def test_output_is_plain_json() -> None:
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 3, 50)
    result = classification_metrics(labels, softmax_rows(rng, labels, 3).astype(np.float32))
    # allow_nan=False: no NaN/inf sneaks in; default=None-less dumps: no NumPy scalars either.
    assert json.loads(json.dumps(result, allow_nan=False)) == result
    assert type(result["accuracy"]) is float
    assert type(result["confusion_matrix"][0][0]) is int


# --- multi-class -----------------------------------------------------------------------------


def test_multiclass_macro_and_per_class() -> None:
    labels = [0, 0, 1, 1, 2, 2]
    probs = [
        [0.8, 0.1, 0.1],
        [0.3, 0.6, 0.1],  # wrong: predicted 1
        [0.1, 0.8, 0.1],
        [0.2, 0.7, 0.1],
        [0.1, 0.2, 0.7],
        [0.1, 0.1, 0.8],
    ]
    result = classification_metrics(labels, probs, label_names=["a", "b", "c"])
    assert result["task"] == "multiclass"
    assert result["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [0, 0, 2]]
    assert result["accuracy"] == pytest.approx(5 / 6)
    # Per class precision 1, 2/3, 1; recall 1/2, 1, 1.
    assert result["precision"] == pytest.approx((1 + 2 / 3 + 1) / 3)
    assert result["recall"] == pytest.approx((1 / 2 + 1 + 1) / 3)
    f1s = [2 / 3, 0.8, 1.0]
    assert result["f1"] == pytest.approx(sum(f1s) / 3)
    assert [row["f1"] for row in result["per_class"]] == pytest.approx(f1s)
    assert result["roc_auc"] == pytest.approx(roc_auc_score(labels, probs, multi_class="ovr", average="macro"))
    assert result["calibration"]["kind"] == "top_label"


def test_multiclass_auc_matches_sklearn_one_vs_rest() -> None:
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 4, 400)
    probs = softmax_rows(rng, labels, 4)
    result = classification_metrics(labels, probs)
    assert result["roc_auc"] == pytest.approx(roc_auc_score(labels, probs, multi_class="ovr", average="macro"))
    assert 0.5 < result["pr_auc"] < 1.0


def test_multiclass_missing_class_is_skipped_with_a_warning() -> None:
    labels = [0, 0, 1, 1]
    probs = [[0.7, 0.2, 0.1], [0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.1, 0.8, 0.1]]
    result = classification_metrics(labels, probs, label_names=["a", "b", "c"])
    assert result["roc_auc"] == 1.0
    assert result["per_class"][2]["roc_auc"] is None
    assert any("'c'" in warning and "macro" in warning for warning in result["warnings"])


# --- calibration -----------------------------------------------------------------------------


def test_calibration_of_a_known_case() -> None:
    # Bin (0.1, 0.2]: 0.2 with outcome 0; bin (0.7, 0.8]: two 0.8s, one positive.
    result = classification_metrics([0, 1, 0], [0.2, 0.8, 0.8])
    calibration = result["calibration"]
    assert calibration["n_bins"] == 10
    assert sum(b["count"] for b in calibration["bins"]) == 3
    filled = {b["lower"]: b for b in calibration["bins"] if b["count"]}
    assert filled[0.1] == {"lower": 0.1, "upper": 0.2, "mean_predicted": 0.2, "fraction_positive": 0.0, "count": 1}
    assert filled[0.7]["fraction_positive"] == 0.5
    assert calibration["ece"] == pytest.approx(1 / 3 * 0.2 + 2 / 3 * 0.3)


def test_reliability_bins_match_sklearn_calibration_curve() -> None:
    rng = np.random.default_rng(4)
    positive = rng.random(1000)
    labels = (rng.random(1000) < positive).astype(int)
    bins = [b for b in classification_metrics(labels, positive)["calibration"]["bins"] if b["count"]]
    fraction_positive, mean_predicted = calibration_curve(labels, positive, n_bins=10)
    assert [b["fraction_positive"] for b in bins] == pytest.approx(fraction_positive)
    assert [b["mean_predicted"] for b in bins] == pytest.approx(mean_predicted)


# --- edge cases and errors -------------------------------------------------------------------


def test_single_class_gives_null_auc_and_a_warning() -> None:
    result = classification_metrics([1, 1, 1], [0.9, 0.8, 0.3])
    assert result["roc_auc"] is None
    assert result["pr_auc"] is None
    assert any("only class '1'" in warning for warning in result["warnings"])
    assert result["accuracy"] == pytest.approx(2 / 3)
    json.dumps(result, allow_nan=False)


def test_never_predicted_class_is_warned() -> None:
    result = classification_metrics([0, 1, 1], [0.1, 0.2, 0.3])
    assert result["precision"] == 0.0
    assert any("never predicted" in warning for warning in result["warnings"])


def test_length_mismatch_names_both_lengths() -> None:
    with pytest.raises(ValueError, match=r"labels has 3 entries but probabilities has 2"):
        classification_metrics([0, 1, 1], [0.1, 0.9])


@pytest.mark.parametrize(
    ("probabilities", "message"),
    [
        ([1.2, 0.3], r"\[0, 1\]"),
        ([-0.1, 0.3], r"\[0, 1\]"),
        ([[0.5, 0.6], [0.5, 0.5]], r"row 0 sums to 1\.1"),
        ([[2.0, -1.0], [0.5, 0.5]], r"\[0, 1\]"),
        ([float("nan"), 0.5], "NaN"),
    ],
)
def test_invalid_probabilities_are_rejected(probabilities: list[float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        classification_metrics([0, 1], probabilities)


def test_other_input_errors() -> None:
    with pytest.raises(ValueError, match="empty"):
        classification_metrics([], np.zeros(0))
    with pytest.raises(ValueError, match=r"0\.\.1"):
        classification_metrics([0, 2], [0.1, 0.9])
    with pytest.raises(ValueError, match="label_names has 3 names"):
        classification_metrics([0, 1], [0.1, 0.9], label_names=["a", "b", "c"])
    with pytest.raises(ValueError, match="integer class ids"):
        classification_metrics(np.array([0.5, 1.0]), [0.1, 0.9])


# --- curves ----------------------------------------------------------------------------------


def test_curves_are_downsampled_and_keep_end_points() -> None:
    rng = np.random.default_rng(5)
    labels = rng.integers(0, 2, 5000)
    positive = np.clip(labels * 0.2 + rng.random(5000) * 0.8, 0, 1)
    result = curves(labels, positive, max_points=200)
    (roc,) = result["roc"]
    (pr,) = result["pr"]
    assert roc["label"] == pr["label"] == 1
    assert 2 <= len(roc["fpr"]) <= 200
    assert len(roc["fpr"]) == len(roc["tpr"]) == len(roc["thresholds"])
    assert (roc["fpr"][0], roc["tpr"][0], roc["fpr"][-1], roc["tpr"][-1]) == (0.0, 0.0, 1.0, 1.0)
    assert roc["thresholds"][0] is None  # sklearn's +inf threshold, which JSON cannot hold
    assert roc["auc"] == pytest.approx(roc_auc_score(labels, positive))
    assert len(pr["precision"]) <= 200
    assert (pr["recall"][0], pr["recall"][-1], pr["precision"][-1]) == (1.0, 0.0, 1.0)
    assert pr["thresholds"][-1] is None
    json.dumps(result, allow_nan=False)


def test_curves_for_multiclass_and_single_class() -> None:
    labels = [0, 1, 2, 2]
    probs = [[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8], [0.2, 0.2, 0.6]]
    result = curves(labels, probs, label_names=["a", "b", "c"])
    assert [entry["name"] for entry in result["roc"]] == ["a", "b", "c"]
    assert all(entry["auc"] == 1.0 for entry in result["roc"])
    assert curves([1, 1], [0.3, 0.9]) == {"roc": [], "pr": []}


# --- language models -------------------------------------------------------------------------


def test_perplexity_of_known_losses() -> None:
    assert perplexity(0.0, 10) == 1.0
    assert perplexity(10 * math.log(50), 10) == pytest.approx(50.0)
    assert perplexity(1e6, 1) == math.inf
    with pytest.raises(ValueError, match="total_tokens"):
        perplexity(1.0, 0)
    with pytest.raises(ValueError, match="total_nll"):
        perplexity(-1.0, 3)


def test_language_model_metrics_weight_batches_by_tokens() -> None:
    # Batch 1: 10 tokens at 2.0 nats, batch 2: 30 tokens at 1.0: mean (20 + 30) / 40.
    result = language_model_metrics([2.0, 1.0], [10, 30])
    assert result == {
        "loss": pytest.approx(1.25),
        "perplexity": pytest.approx(math.exp(1.25)),
        "tokens": 40,
        "batches": 2,
    }
    with pytest.raises(ValueError, match="losses_per_batch has 2 entries but tokens_per_batch has 1"):
        language_model_metrics([2.0, 1.0], [10])
    with pytest.raises(ValueError, match="no batches"):
        language_model_metrics([], [])
    with pytest.raises(ValueError, match=r"losses_per_batch\[1\]"):
        language_model_metrics([2.0, float("nan")], [10, 10])
    with pytest.raises(ValueError, match="sums to 0"):
        language_model_metrics([2.0], [0])


# --- ranking ---------------------------------------------------------------------------------


def test_recall_at_k() -> None:
    ranked = [["a", "b", "c", "d"], ["x", "y", "z"]]
    relevant = [{"b", "d"}, {"x"}]
    # Query 1: top 2 holds b of {b, d}: 1/2; query 2: x in top 2: 1.
    assert recall_at_k(ranked, relevant, k=2) == pytest.approx(0.75)
    assert recall_at_k(ranked, relevant, k=4) == 1.0
    assert recall_at_k(ranked, relevant, k=1) == pytest.approx(0.5)


def test_mrr() -> None:
    ranked = [["a", "b", "c"], ["x", "y", "z"], ["p", "q"]]
    relevant = [{"c"}, {"x", "z"}, {"r"}]
    assert mrr(ranked, relevant) == pytest.approx((1 / 3 + 1 + 0) / 3)
    assert mrr(ranked, relevant, k=2) == pytest.approx((0 + 1 + 0) / 3)


def test_ndcg_at_k_against_hand_computed_dcg() -> None:
    # Graded gains: ranked c(0), a(3), b(2); ideal a(3), b(2), c(0).
    ranked = [["c", "a", "b"]]
    relevant = [{"a": 3, "b": 2}]
    dcg = 3 / math.log2(3) + 2 / math.log2(4)
    idcg = 3 / math.log2(2) + 2 / math.log2(3)
    assert ndcg_at_k(ranked, relevant, k=3) == pytest.approx(dcg / idcg)
    assert ndcg_at_k([["a", "b", "c"]], relevant, k=3) == pytest.approx(1.0)
    # k=1: c first, gain 0.
    assert ndcg_at_k(ranked, relevant, k=1) == 0.0


def test_ndcg_counts_relevant_items_that_were_not_retrieved() -> None:
    # Only "a" retrieved (at rank 1); "b" is relevant too, so the ideal top 5 holds both.
    assert ndcg_at_k([["a"]], [{"a", "b"}], k=5) == pytest.approx(1 / (1 + 1 / math.log2(3)))
    # A short list does not let the missed item into the top k.
    assert ndcg_at_k([["x"]], [{"b"}], k=5) == 0.0


def test_ranking_input_errors() -> None:
    with pytest.raises(ValueError, match="ranked has 2 queries but relevant has 1"):
        recall_at_k([["a"], ["b"]], [{"a"}], k=1)
    with pytest.raises(ValueError, match="k must be a positive integer"):
        ndcg_at_k([["a"]], [{"a"}], k=0)
    with pytest.raises(ValueError, match=r"relevant\[0\] has no relevant items"):
        mrr([["a"]], [set()])
    with pytest.raises(ValueError, match=r"ranked\[0\] lists an item more than once"):
        recall_at_k([["a", "a"]], [{"a"}], k=2)
    with pytest.raises(ValueError, match="not a str"):
        recall_at_k(["abc"], [{"a"}], k=1)
    with pytest.raises(ValueError, match="negative gain"):
        ndcg_at_k([["a"]], [{"a": 1.0, "b": -1.0}], k=1)
