"""Evaluation: metrics for classifiers, language models and rankers, and HTML/JSON reports.

    metrics = classification_metrics(labels, probabilities, label_names=["neg", "pos"])
    lm = language_model_metrics(losses_per_batch, tokens_per_batch)   # loss, perplexity, tokens
    json_path, html_path = write_report(out_dir, metrics, labels=labels, probabilities=probabilities,
                                        log_history=load_log_history(run_dir), title="sentiment v3")

Metrics are scikit-learn's underneath and come back as plain JSON-serializable values.
Classification: binary probabilities as ``[N]`` (P(class 1)) or ``[N, 2]``; multi-class as
``[N, K]``. Undefined figures (ROC-AUC with a single class in the labels) are ``None``, with
the reason in the result's ``warnings``. Bad input raises ``ValueError`` naming what is wrong.
Ranking (for the shop's search and recommendations): ``recall_at_k``, ``ndcg_at_k``, ``mrr``
over per-query ranked item lists and relevant items (a set, or a mapping item -> gain).

The report is one self-contained HTML page (plots as embedded PNGs, no scripts, all text
escaped) next to ``eval_report.json`` holding the metrics and the curve points.
"""

from shoplm.evaluation.metrics import (
    classification_metrics,
    curves,
    language_model_metrics,
    perplexity,
    reliability,
)
from shoplm.evaluation.ranking import mrr, ndcg_at_k, recall_at_k
from shoplm.evaluation.report import load_log_history, loss_curves, write_report

__all__ = [
    "classification_metrics",
    "curves",
    "language_model_metrics",
    "load_log_history",
    "loss_curves",
    "mrr",
    "ndcg_at_k",
    "perplexity",
    "recall_at_k",
    "reliability",
    "write_report",
]
