"""The JSON + HTML evaluation report and reading a Trainer's log history."""

from __future__ import annotations

import base64
import json
import os
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from shoplm.evaluation import classification_metrics, language_model_metrics, load_log_history, write_report

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

LOG_HISTORY: list[dict[str, Any]] = [
    {"loss": 2.5, "grad_norm": 1.0, "learning_rate": 5e-5, "epoch": 0.5, "step": 10},
    {"eval_loss": 2.2, "eval_runtime": 1.0, "epoch": 0.5, "step": 10},
    {"loss": 1.9, "grad_norm": 0.8, "learning_rate": 4e-5, "epoch": 1.0, "step": 20},
    {"eval_loss": 1.8, "eval_runtime": 1.0, "epoch": 1.0, "step": 20},
    {"train_runtime": 9.0, "train_loss": 2.2, "epoch": 1.0, "step": 20},
]


class _PageParser(HTMLParser):
    """Collects tags, image sources and checks that every opened element is closed."""

    VOID = frozenset({"meta", "img", "br", "hr", "link", "input"})

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.tags: list[str] = []
        self.images: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag == "img":
            self.images.append(dict(attrs).get("src") or "")
        elif tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes {self.stack[-1:] or 'nothing'}"
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(path: Path) -> _PageParser:
    parser = _PageParser()
    parser.feed(path.read_text(encoding="utf-8"))
    parser.close()
    assert parser.stack == [], f"unclosed elements {parser.stack}"
    return parser


def classification_inputs() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 300)
    positive = np.clip(labels * 0.3 + rng.random(300) * 0.7, 0, 1)
    return labels, positive


def test_classification_report(tmp_path: Path) -> None:
    labels, positive = classification_inputs()
    metrics = classification_metrics(labels, positive, label_names=["negative", "positive"])
    json_path, html_path = write_report(
        tmp_path / "report", metrics, labels=labels, probabilities=positive, title="sentiment v1"
    )
    assert json_path == tmp_path / "report" / "eval_report.json"
    assert html_path == tmp_path / "report" / "eval_report.html"

    page = parse(html_path)
    # ROC, PR, confusion matrix, calibration; no log history, so no loss curves.
    assert len(page.images) == 4
    for src in page.images:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1]).startswith(PNG_SIGNATURE)
    assert "script" not in page.tags
    assert "link" not in page.tags
    assert "accuracy" in page.text and "roc_auc" in page.text

    saved = json.loads(json_path.read_text(encoding="utf-8"))
    assert saved["title"] == "sentiment v1"
    assert saved["metrics"] == json.loads(json.dumps(metrics))
    assert saved["curves"]["roc"][0]["name"] == "positive"
    assert saved["loss_curves"] == {"train": [], "eval": []}


def test_classification_report_with_training_log(tmp_path: Path) -> None:
    labels, positive = classification_inputs()
    metrics = classification_metrics(labels, positive)
    _, html_path = write_report(
        tmp_path, metrics, labels=labels, probabilities=positive, log_history=LOG_HISTORY, title="t"
    )
    assert len(parse(html_path).images) == 5


def test_language_model_report_has_loss_curves_only(tmp_path: Path) -> None:
    metrics = language_model_metrics([2.0, 1.0], [10, 30])
    json_path, html_path = write_report(tmp_path, metrics, log_history=LOG_HISTORY, title="suggest LM")
    page = parse(html_path)
    assert len(page.images) == 1
    assert "perplexity" in page.text
    saved = json.loads(json_path.read_text(encoding="utf-8"))
    assert saved["curves"] is None
    # The Trainer's closing summary (train_loss) is not a point on the curve.
    assert saved["loss_curves"] == {"train": [[10.0, 2.5], [20.0, 1.9]], "eval": [[10.0, 2.2], [20.0, 1.8]]}


def test_report_without_plot_data_has_no_images(tmp_path: Path) -> None:
    _, html_path = write_report(tmp_path, {"loss": 1.0, "perplexity": float("inf")}, title="bare")
    assert parse(html_path).images == []
    saved = json.loads((tmp_path / "eval_report.json").read_text(encoding="utf-8"))
    assert saved["metrics"]["perplexity"] is None


def test_title_and_label_names_are_escaped(tmp_path: Path) -> None:
    title = '<script>alert("x")</script> & co'
    metrics = classification_metrics([0, 1, 1], [0.2, 0.7, 0.4], label_names=["<b>neg</b>", "pos"])
    _, html_path = write_report(tmp_path, metrics, labels=[0, 1, 1], probabilities=[0.2, 0.7, 0.4], title=title)
    text = html_path.read_text(encoding="utf-8")
    assert "<script" not in text
    assert "<b>" not in text
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; co" in text
    page = parse(html_path)
    assert "script" not in page.tags and "b" not in page.tags
    assert title in page.text


def test_labels_without_probabilities_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="together"):
        write_report(tmp_path, {}, labels=[0, 1], title="t")


# --- load_log_history ------------------------------------------------------------------------


def write_state(directory: Path, global_step: int, history: list[dict[str, Any]]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "trainer_state.json"
    path.write_text(json.dumps({"global_step": global_step, "log_history": history}), encoding="utf-8")
    return path


def test_load_log_history_takes_the_newest_checkpoint(tmp_path: Path) -> None:
    write_state(tmp_path / "checkpoint-20", 20, LOG_HISTORY)
    old = write_state(tmp_path / "checkpoint-10", 10, LOG_HISTORY[:2])
    # The older checkpoint was touched last (copied, say): the step decides, not the clock.
    stat = old.stat()
    os.utime(old, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    write_state(tmp_path / "checkpoint-9", 9, LOG_HISTORY[:1])
    assert load_log_history(tmp_path) == LOG_HISTORY


def test_load_log_history_prefers_the_final_state_of_a_run(tmp_path: Path) -> None:
    write_state(tmp_path / "checkpoint-10", 10, LOG_HISTORY[:2])
    write_state(tmp_path, 20, LOG_HISTORY)
    assert load_log_history(tmp_path) == LOG_HISTORY
    assert load_log_history(tmp_path / "checkpoint-10") == LOG_HISTORY[:2]


def test_load_log_history_without_state_or_directory(tmp_path: Path) -> None:
    (tmp_path / "checkpoint-5").mkdir()
    assert load_log_history(tmp_path) == []
    with pytest.raises(FileNotFoundError):
        load_log_history(tmp_path / "missing")
    (tmp_path / "trainer_state.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_log_history(tmp_path)


def test_dollar_signs_in_label_names_are_not_mathtext(tmp_path: Path) -> None:
    # Unescaped, "$\frac{$" is invalid mathtext and matplotlib fails while drawing.
    metrics = classification_metrics([0, 1, 1, 0], [0.2, 0.7, 0.4, 0.1], label_names=["$\\frac{$", "$5 off"])
    _, html_path = write_report(
        tmp_path, metrics, labels=[0, 1, 1, 0], probabilities=[0.2, 0.7, 0.4, 0.1], title="prices"
    )
    assert len(parse(html_path).images) == 4
