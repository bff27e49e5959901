"""Evaluation reports: ``eval_report.json`` and a self-contained ``eval_report.html``.

The HTML page has no external assets and no JavaScript: plots are PNGs drawn with matplotlib's
Agg canvas (no pyplot, so no global backend state and no display needed) and embedded as
base64 data URIs; every piece of text goes through ``html.escape``, since titles, label names
and warnings may come from users or models.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeGuard

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from shoplm.evaluation.metrics import curves

JSON_NAME = "eval_report.json"
HTML_NAME = "eval_report.html"
TRAINER_STATE_NAME = "trainer_state.json"
_CHECKPOINT_NUMBER = re.compile(r"checkpoint-(\d+)$")

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.15rem; margin-top: 2rem; }
table { border-collapse: collapse; margin: 0.5rem 0; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.6rem; text-align: right; }
th { background: #f3f3f3; } td.key, th.key { text-align: left; }
.plots { display: flex; flex-wrap: wrap; gap: 1rem; }
.plots figure { margin: 0; } figcaption { font-size: 0.85rem; color: #555; }
.warnings li { color: #8a4b00; }
"""


def write_report(
    out_dir: Path,
    metrics: dict[str, Any],
    *,
    labels: Sequence[int] | np.ndarray | None = None,
    probabilities: np.ndarray | Sequence[float] | Sequence[Sequence[float]] | None = None,
    log_history: list[dict[str, Any]] | None = None,
    title: str,
) -> tuple[Path, Path]:
    """Write ``eval_report.json`` and ``eval_report.html`` into ``out_dir`` and return their paths.

    ``metrics`` is the output of :func:`~shoplm.evaluation.metrics.classification_metrics` or
    :func:`~shoplm.evaluation.metrics.language_model_metrics` (any dict of JSON-like values
    works). With ``labels`` and ``probabilities`` the report adds ROC and PR curves;
    ``log_history`` (a Hugging Face ``trainer_state.json`` ``log_history``, see
    :func:`load_log_history`) adds train/eval loss curves. A confusion matrix and a
    calibration plot are drawn when ``metrics`` holds ``confusion_matrix`` / ``calibration``.
    Each plot appears only when its data exists. Non-finite numbers are written as JSON null.

    Raises:
        ValueError: only one of ``labels`` and ``probabilities`` given, or the errors of
            :func:`~shoplm.evaluation.metrics.curves`.
    """
    if (labels is None) != (probabilities is None):
        raise ValueError("pass labels and probabilities together (for ROC/PR curves) or neither")
    label_names = metrics.get("label_names")
    curve_points = None
    if labels is not None and probabilities is not None:
        curve_points = curves(labels, probabilities, label_names=label_names)
    loss_points = loss_curves(log_history or [])

    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / JSON_NAME
    html_path = out_dir / HTML_NAME
    payload = {"title": title, "metrics": metrics, "curves": curve_points, "loss_curves": loss_points}
    json_path.write_text(json.dumps(_json_safe(payload), indent=2, allow_nan=False) + "\n", encoding="utf-8")
    html_path.write_text(_render_html(title, metrics, curve_points, loss_points), encoding="utf-8")
    return json_path, html_path


def load_log_history(run_or_checkpoint_dir: Path | str) -> list[dict[str, Any]]:
    """The ``log_history`` of the newest ``trainer_state.json`` in a run or checkpoint directory.

    Looks at ``trainer_state.json`` in the directory itself and in its ``checkpoint-*``
    subdirectories and takes the one with the highest ``global_step`` (the file's own record;
    the checkpoint number when the file lacks it), then the most recently modified. Returns
    ``[]`` when there is no ``trainer_state.json``.

    Raises:
        FileNotFoundError: the directory does not exist.
        ValueError: the chosen file is not valid JSON or its ``log_history`` is not a list.
    """
    root = Path(run_or_checkpoint_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"no such run or checkpoint directory: {root}")
    candidates = [root / TRAINER_STATE_NAME, *sorted(root.glob(f"checkpoint-*/{TRAINER_STATE_NAME}"))]
    newest: tuple[tuple[int, int], dict[str, Any], Path] | None = None
    for path in candidates:
        if not path.is_file():
            continue
        state = _read_state(path)
        match = _CHECKPOINT_NUMBER.search(path.parent.name)
        step = state.get("global_step")
        if not isinstance(step, int):
            step = int(match.group(1)) if match else -1
        key = (step, path.stat().st_mtime_ns)
        if newest is None or key > newest[0]:
            newest = (key, state, path)
    if newest is None:
        return []
    _, state, path = newest
    history = state.get("log_history", [])
    if not isinstance(history, list):
        raise ValueError(f"{path}: log_history is a {type(history).__name__}, expected a list")
    return [entry for entry in history if isinstance(entry, dict)]


def loss_curves(log_history: list[dict[str, Any]]) -> dict[str, list[list[float]]]:
    """``{"train": [[step, loss], ...], "eval": [[step, eval_loss], ...]}`` from a Trainer log history.

    Entries without a numeric ``step`` or with a non-finite loss are skipped; the Trainer's
    closing summary (``train_loss`` over the whole run) is not a point on the curve.
    """
    points: dict[str, list[list[float]]] = {"train": [], "eval": []}
    for entry in log_history:
        step = entry.get("step")
        if not _is_number(step):
            continue
        for key, series in (("loss", "train"), ("eval_loss", "eval")):
            value = entry.get(key)
            if _is_number(value) and math.isfinite(value):
                points[series].append([float(step), float(value)])
    return points


def _read_state(path: Path) -> dict[str, Any]:
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON: {error}") from error
    if not isinstance(state, dict):
        raise ValueError(f"{path} holds a {type(state).__name__}, expected a JSON object")
    return state


def _is_number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _json_safe(value: Any) -> Any:
    """Plain JSON values: NumPy scalars/arrays unwrapped, NaN and infinities as None."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return _json_safe(value.tolist())
    if isinstance(value, np.generic):
        return _json_safe(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


# --- HTML -------------------------------------------------------------------------------------


def _render_html(
    title: str,
    metrics: dict[str, Any],
    curve_points: dict[str, Any] | None,
    loss_points: dict[str, list[list[float]]],
) -> str:
    esc = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        '<head><meta charset="utf-8">',
        f"<title>{esc(title)}</title>",
        f"<style>{_STYLE}</style>",
        "</head>",
        "<body>",
        f"<h1>{esc(title)}</h1>",
    ]
    warnings = metrics.get("warnings") or []
    if warnings:
        parts.append('<h2>Warnings</h2><ul class="warnings">')
        parts += [f"<li>{esc(str(w))}</li>" for w in warnings]
        parts.append("</ul>")
    parts.append("<h2>Metrics</h2>")
    parts.append(_table(["metric", "value"], [[key, _format(value)] for key, value in _scalar_rows(metrics)]))

    per_class = metrics.get("per_class")
    if isinstance(per_class, list) and per_class and all(isinstance(row, dict) for row in per_class):
        columns = list(per_class[0])
        parts.append("<h2>Per class</h2>")
        parts.append(_table(columns, [[_format(row.get(c)) for c in columns] for row in per_class]))

    names = [str(n) for n in metrics.get("label_names") or []]
    matrix = metrics.get("confusion_matrix")
    if isinstance(matrix, list) and matrix:
        names = names if len(names) == len(matrix) else [str(k) for k in range(len(matrix))]
        parts.append("<h2>Confusion matrix</h2><p>Rows: true class; columns: predicted class.</p>")
        parts.append(
            _table(
                ["true \\ predicted", *names], [[n, *map(_format, row)] for n, row in zip(names, matrix, strict=True)]
            )
        )

    figures = _figures(metrics, curve_points, loss_points, names)
    if figures:
        parts.append('<h2>Plots</h2><div class="plots">')
        for caption, png in figures:
            data = base64.b64encode(png).decode("ascii")
            parts.append(
                f'<figure><img alt="{esc(caption)}" src="data:image/png;base64,{data}">'
                f"<figcaption>{esc(caption)}</figcaption></figure>"
            )
        parts.append("</div>")
    parts += ["</body>", "</html>", ""]
    return "\n".join(parts)


def _scalar_rows(metrics: dict[str, Any]) -> list[tuple[str, Any]]:
    """Top-level scalars, plus the scalars one level down as ``parent.key`` (``calibration.ece``)."""
    rows: list[tuple[str, Any]] = []
    for key, value in metrics.items():
        if key in ("warnings", "per_class", "confusion_matrix"):
            continue
        if _is_scalar(value):
            rows.append((key, value))
        elif isinstance(value, list) and all(_is_scalar(v) for v in value):
            rows.append((key, ", ".join(_format(v) for v in value)))
        elif isinstance(value, dict):
            rows += [(f"{key}.{sub}", v) for sub, v in value.items() if _is_scalar(v)]
    return rows


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool | np.generic)


def _format(value: Any) -> str:
    if isinstance(value, np.generic):
        value = value.item()
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4f}" if math.isfinite(value) and abs(value) < 1e6 else f"{value:.4g}"
    return str(value)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    esc = html.escape
    head = "".join(
        f'<th class="key">{esc(str(h))}</th>' if i == 0 else f"<th>{esc(str(h))}</th>" for i, h in enumerate(header)
    )
    body = "".join(
        "<tr>"
        + "".join(f'<td class="key">{esc(c)}</td>' if i == 0 else f"<td>{esc(c)}</td>" for i, c in enumerate(row))
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


# --- plots ------------------------------------------------------------------------------------


def _figures(
    metrics: dict[str, Any],
    curve_points: dict[str, Any] | None,
    loss_points: dict[str, list[list[float]]],
    names: list[str],
) -> list[tuple[str, bytes]]:
    figures: list[tuple[str, bytes]] = []
    if loss_points["train"] or loss_points["eval"]:
        figures.append(("Loss vs step", _loss_plot(loss_points)))
    if curve_points and curve_points["roc"]:
        figures.append(("ROC curve", _roc_plot(curve_points["roc"])))
    if curve_points and curve_points["pr"]:
        figures.append(("Precision-recall curve", _pr_plot(curve_points["pr"])))
    matrix = metrics.get("confusion_matrix")
    if isinstance(matrix, list) and matrix:
        figures.append(("Confusion matrix", _confusion_plot(matrix, names)))
    calibration = metrics.get("calibration")
    if isinstance(calibration, dict) and any(b.get("count") for b in calibration.get("bins", [])):
        figures.append(("Calibration (reliability diagram)", _calibration_plot(calibration)))
    return figures


def _new_figure() -> tuple[Figure, Any]:
    figure = Figure(figsize=(5.0, 4.0), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    return figure, figure.add_subplot()


def _plain(text: str) -> str:
    """Text for matplotlib that is drawn as written: ``$`` would otherwise start mathtext."""
    return str(text).replace("$", r"\$")


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    # No "Software" metadata: the same data gives the same bytes on any matplotlib version.
    # A tight box: the constrained layout alone clips the confusion matrix's "true" label,
    # squeezed between the image (kept square) and the figure's edge.
    figure.savefig(buffer, format="png", metadata={"Software": None}, bbox_inches="tight", pad_inches=0.1)
    return buffer.getvalue()


def _loss_plot(points: dict[str, list[list[float]]]) -> bytes:
    figure, ax = _new_figure()
    for series, label, style in (("train", "train loss", "-"), ("eval", "eval loss", "o-")):
        if points[series]:
            steps, losses = zip(*points[series], strict=True)
            ax.plot(steps, losses, style, label=label, markersize=4)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3)
    ax.legend()
    return _png(figure)


def _roc_plot(entries: list[dict[str, Any]]) -> bytes:
    figure, ax = _new_figure()
    for entry in entries:
        ax.plot(entry["fpr"], entry["tpr"], label=f"{_plain(entry['name'])} (AUC {entry['auc']:.3f})")
    ax.plot([0, 1], [0, 1], ":", color="grey", label="chance")
    _finish_unit_axes(ax, "false positive rate", "true positive rate", "lower right")
    return _png(figure)


def _pr_plot(entries: list[dict[str, Any]]) -> bytes:
    figure, ax = _new_figure()
    for entry in entries:
        ax.step(
            entry["recall"],
            entry["precision"],
            where="post",
            label=f"{_plain(entry['name'])} (AP {entry['average_precision']:.3f})",
        )
    _finish_unit_axes(ax, "recall", "precision", "lower left")
    return _png(figure)


def _finish_unit_axes(ax: Any, xlabel: str, ylabel: str, legend_loc: str) -> None:
    # ROC and PR curves both live in the unit square.
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(loc=legend_loc, fontsize="small")


def _confusion_plot(matrix: list[list[int]], names: list[str]) -> bytes:
    figure, ax = _new_figure()
    names = [_plain(name) for name in names]
    values = np.asarray(matrix, dtype=np.float64)
    image = ax.imshow(values, cmap="Blues")
    figure.colorbar(image, ax=ax)
    ticks = range(len(names))
    ax.set_xticks(ticks, names, rotation=45 if len(names) > 4 else 0, ha="right" if len(names) > 4 else "center")
    ax.set_yticks(ticks, names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if len(names) <= 20:
        threshold = values.max() / 2 if values.size else 0
        for i in ticks:
            for j in ticks:
                colour = "white" if values[i, j] > threshold else "black"
                ax.text(j, i, str(int(values[i, j])), ha="center", va="center", color=colour, fontsize="small")
    return _png(figure)


def _calibration_plot(calibration: dict[str, Any]) -> bytes:
    figure, ax = _new_figure()
    filled = [b for b in calibration["bins"] if b.get("count")]
    ax.plot([0, 1], [0, 1], ":", color="grey", label="perfectly calibrated")
    ax.plot(
        [b["mean_predicted"] for b in filled],
        [b["fraction_positive"] for b in filled],
        "o-",
        label=f"model (ECE {calibration.get('ece', math.nan):.3f})",
    )
    top_label = calibration.get("kind") == "top_label"
    ax.set_xlabel("mean confidence of predicted class" if top_label else "mean predicted probability")
    ax.set_ylabel("fraction correct" if top_label else "fraction positive")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize="small")
    return _png(figure)
