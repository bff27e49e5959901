"""Baselines for Chinese shopping-review sentiment (label 1 = positive), to measure models against.

- ``tfidf_logreg``: character 1-3-gram TF-IDF + scikit-learn logistic regression.
- ``snownlp_bayes``: SnowNLP's naive Bayes sentiment classifier, retrained on the train split
  only. (SnowNLP's bundled ``sentiment.marshal`` was trained on the whole corpus the split is
  cut from, so using it as shipped would score test texts it has seen.)

Both take rows ``{"text": str, "label": int}`` and return
:func:`shoplm.evaluation.classification_metrics` on the test rows plus timings, so another
benchmark can call them and compare in the same run. On its own:

    .venv/bin/python benchmarks/sentiment_baselines.py --data DIR   # reads DIR/train.jsonl, DIR/test.jsonl

prints a table and writes ``benchmarks/results/sentiment_baselines.json``. ``DIR`` is the
output of ``shoplm data prepare --corpus reviews --out DIR``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import time
from collections.abc import Sequence
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from shoplm.evaluation import classification_metrics

RESULTS_PATH = Path(__file__).resolve().parent / "results" / "sentiment_baselines.json"
LABEL_NAMES = ["negative", "positive"]
BASELINES = ("tfidf_logreg", "snownlp_bayes")
C_GRID = (1.0, 4.0, 16.0, 64.0)

Row = dict[str, Any]


def tfidf_logreg(
    train_rows: Sequence[Row], test_rows: Sequence[Row], validation_rows: Sequence[Row] | None = None
) -> dict[str, Any]:
    """Character n-gram TF-IDF + logistic regression, fitted on ``train_rows``, scored on ``test_rows``.

    Characters rather than words: Chinese has no spaces, and character n-grams need no
    segmenter, so this baseline shares no tokenization choices with the models it is compared to.
    With ``validation_rows`` the regularisation C is chosen on them (ROC-AUC) from a small
    grid, so the baseline is as strong as its family allows without touching the test rows.

    Returns the test metrics plus ``train_seconds``, ``predict_seconds``, ``n_train``, ``n_test``
    and ``config``.
    """
    train_texts, train_labels = _columns(train_rows, "train_rows")
    test_texts, test_labels = _columns(test_rows, "test_rows")
    start = time.perf_counter()
    vectorizer = TfidfVectorizer(analyzer="char", ngram_range=(1, 3), sublinear_tf=True, min_df=1)
    features = vectorizer.fit_transform(train_texts)
    grid = C_GRID if validation_rows else (1.0,)
    best_c, best_auc = grid[0], -1.0
    if validation_rows:
        validation_texts, validation_labels = _columns(validation_rows, "validation_rows")
        validation_features = vectorizer.transform(validation_texts)
        for c in grid:
            scores = LogisticRegression(C=c, max_iter=2000).fit(features, train_labels).predict_proba(
                validation_features)[:, 1]
            auc = float(roc_auc_score(validation_labels, scores))
            if auc > best_auc:
                best_c, best_auc = c, auc
    model = LogisticRegression(C=best_c, max_iter=2000).fit(features, train_labels)
    train_seconds = time.perf_counter() - start
    config = {
        "analyzer": "char", "ngram_range": [1, 3], "sublinear_tf": True, "min_df": 1,
        "classifier": f"LogisticRegression(C={best_c}, lbfgs)",
        "c_chosen_on": "validation ROC-AUC" if validation_rows else "fixed",
    }

    start = time.perf_counter()
    positive_column = list(model.classes_).index(1)
    positive = model.predict_proba(vectorizer.transform(test_texts))[:, positive_column]
    predict_seconds = time.perf_counter() - start
    return _result(test_labels, positive, train_seconds, predict_seconds, len(train_rows), config)


def snownlp_bayes(train_rows: Sequence[Row], test_rows: Sequence[Row]) -> dict[str, Any]:
    """SnowNLP's naive Bayes sentiment classifier, trained on ``train_rows`` only, scored on ``test_rows``.

    Features are those of ``snownlp.sentiment.Sentiment.handle``: SnowNLP's own segmenter, then
    its stop-word filter. The model lives in memory; nothing is written to SnowNLP's package
    directory. P(positive) is ``classify``'s probability of its chosen class, flipped when it
    chose negative.

    Returns the test metrics plus ``train_seconds`` (segmenting the train texts included),
    ``predict_seconds``, ``n_train``, ``n_test`` and ``config``.
    """
    # Imported here: importing snownlp loads its segmentation and bundled sentiment models
    # (about 2 s), which only this baseline needs.
    from snownlp import normal, seg
    from snownlp.classification.bayes import Bayes

    def features(text: str) -> list[str]:
        return list(normal.filter_stop(seg.seg(text)))

    train_texts, train_labels = _columns(train_rows, "train_rows")
    test_texts, test_labels = _columns(test_rows, "test_rows")
    start = time.perf_counter()
    classifier = Bayes()
    classifier.train(
        [
            [features(text), "pos" if label == 1 else "neg"]
            for text, label in zip(train_texts, train_labels, strict=True)
        ]
    )
    train_seconds = time.perf_counter() - start

    start = time.perf_counter()
    positive = []
    for text in test_texts:
        chosen, probability = classifier.classify(features(text))
        positive.append(probability if chosen == "pos" else 1.0 - probability)
    predict_seconds = time.perf_counter() - start
    config = {"features": "snownlp.seg.seg + snownlp.normal.filter_stop", "classifier": "snownlp Bayes (add-one)"}
    return _result(test_labels, np.asarray(positive), train_seconds, predict_seconds, len(train_rows), config)


def read_jsonl(path: Path) -> list[Row]:
    """Rows of a JSON-lines file, each checked to hold a str ``text`` and a 0/1 ``label``."""
    rows: list[Row] = []
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}:{number}: not valid JSON: {error}") from error
            if not isinstance(row, dict) or not isinstance(row.get("text"), str) or row.get("label") not in (0, 1):
                raise ValueError(f'{path}:{number}: expected {{"text": str, "label": 0 or 1}}')
            rows.append(row)
    return rows


def _columns(rows: Sequence[Row], name: str) -> tuple[list[str], list[int]]:
    if not rows:
        raise ValueError(f"{name} is empty")
    return [str(row["text"]) for row in rows], [int(row["label"]) for row in rows]


def _result(
    test_labels: list[int],
    positive: np.ndarray,
    train_seconds: float,
    predict_seconds: float,
    n_train: int,
    config: dict[str, Any],
) -> dict[str, Any]:
    return {
        **classification_metrics(test_labels, positive, LABEL_NAMES),
        "train_seconds": round(train_seconds, 3),
        "predict_seconds": round(predict_seconds, 3),
        "n_train": n_train,
        "n_test": len(test_labels),
        "config": config,
    }


def _describe_split(path: Path, rows: list[Row]) -> dict[str, Any]:
    # The hash identifies which split was measured without writing this machine's paths.
    return {
        "file": path.name,
        "rows": len(rows),
        "positive": sum(row["label"] for row in rows),
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
    }


def _print_table(results: dict[str, dict[str, Any]]) -> None:
    columns = [
        ("baseline", "{}"),
        ("n_train", "{}"),
        ("n_test", "{}"),
        ("accuracy", "{:.4f}"),
        ("f1", "{:.4f}"),
        ("roc_auc", "{:.4f}"),
        ("pr_auc", "{:.4f}"),
        ("log_loss", "{:.4f}"),
        ("ece", "{:.4f}"),
        ("train_seconds", "{:.2f}"),
        ("predict_seconds", "{:.2f}"),
    ]
    table = []
    for name, result in results.items():
        values = {**result, "baseline": name, "ece": result["calibration"]["ece"]}
        table.append([("—" if values[key] is None else fmt.format(values[key])) for key, fmt in columns])
    header = [key for key, _ in columns]
    widths = [max(len(cell) for cell in column) for column in zip(header, *table, strict=True)]
    for line in [header, *table]:
        # Names left-aligned, numbers right-aligned.
        print(
            "  ".join(
                cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(line, widths, strict=True))
            )
        )


def main(argv: Sequence[str] | None = None) -> None:
    """Run the baselines on DIR/train.jsonl -> DIR/test.jsonl, print a table, write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--data", type=Path, required=True, help="directory with train.jsonl and test.jsonl")
    parser.add_argument("--out", type=Path, default=RESULTS_PATH, help="results JSON (default: %(default)s)")
    parser.add_argument("--baselines", default=",".join(BASELINES), help="comma-separated subset of %(default)s")
    args = parser.parse_args(argv)

    chosen = [name.strip() for name in args.baselines.split(",") if name.strip()]
    unknown = sorted(set(chosen) - set(BASELINES))
    if unknown:
        parser.error(f"unknown baselines {unknown}; choose from {list(BASELINES)}")
    train_path, test_path = args.data / "train.jsonl", args.data / "test.jsonl"
    for path in (train_path, test_path):
        if not path.is_file():
            parser.error(f"{path} not found (make it with: shoplm data prepare --corpus reviews --out {args.data})")
    train_rows, test_rows = read_jsonl(train_path), read_jsonl(test_path)
    validation_path = args.data / "validation.jsonl"
    validation_rows = read_jsonl(validation_path) if validation_path.is_file() else None

    results = {}
    for name in chosen:
        print(f"running {name} on {len(train_rows)} train / {len(test_rows)} test rows ...", flush=True)
        if name == "tfidf_logreg":
            results[name] = tfidf_logreg(train_rows, test_rows, validation_rows)
        else:
            results[name] = snownlp_bayes(train_rows, test_rows)
    _print_table(results)

    report = {
        "benchmark": "sentiment_baselines",
        "data": {"train": _describe_split(train_path, train_rows), "test": _describe_split(test_path, test_rows)},
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "scikit-learn": version("scikit-learn"),
            "snownlp": version("snownlp"),
        },
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, ensure_ascii=False, allow_nan=False) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
