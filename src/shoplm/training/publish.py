"""Publish a trained model into the model repository as ``<repository>/<name>/<version>/``.

The version directory appears atomically (written beside it, then renamed), so a server that
watches the repository never sees half a model. Its ``model_card.json`` says what the model
is: task, labels, metrics, the data hash, the config and the preprocessing it was trained with.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path
from typing import Any

import yaml

from shoplm.config import NAME_PATTERN
from shoplm.training import run_dir as runs
from shoplm.training.run_dir import FINAL_MODEL_DIR
from shoplm.versions import highest_numbered, version_names, version_number

# The server's task for each training task.
SERVING_TASKS = {"classify": "classify", "clm": "generate", "chat": "generate", "mlm": "fill-mask"}
EVAL_REPORT = "eval_report.json"


class PublishError(ValueError):
    """The run cannot be published; the message says why."""


def model_source(run: Path) -> Path:
    """The model directory of a run (its ``final/``) or a model directory given directly."""
    if (run / FINAL_MODEL_DIR / "config.json").is_file():
        return run / FINAL_MODEL_DIR
    if (run / "config.json").is_file():
        return run
    raise PublishError(f"{run} holds no trained model (no final/config.json); did the run finish?")


def next_version(directory: Path) -> str:
    """One above the whole part of the highest numbered version under ``<repository>/<name>``
    (``3`` after ``2`` or ``2.5``), starting at 1."""
    highest = highest_numbered(version_names(directory))
    number = version_number(highest) if highest is not None else None
    return str(number[0] + 1 if number else 1)


# The card's headline metrics come from these splits' reports when the run has them, the test
# split first; a report of some other file (`shoplm eval RUN --data FILE`) is listed, not headlined.
HEADLINE_SPLITS = ("test", "validation")


def run_evaluations(run: Path) -> list[dict[str, Any]]:
    """The scalar metrics of each evaluation report in the run directory, with the split or data
    file each measured: the test split first, then validation, then the others newest first."""
    reports = sorted(run.glob(f"eval*/{EVAL_REPORT}"), key=lambda p: p.stat().st_mtime, reverse=True)

    def rank(path: Path) -> int:
        split = path.parent.name.removeprefix("eval-")
        return HEADLINE_SPLITS.index(split) if split in HEADLINE_SPLITS else len(HEADLINE_SPLITS)

    evaluations = []
    for path in sorted(reports, key=rank):
        metrics = json.loads(path.read_text(encoding="utf-8")).get("metrics", {})
        evaluations.append({
            "split": path.parent.name.removeprefix("eval-") or None,
            **{key: value for key, value in metrics.items() if not isinstance(value, (list, dict))},
        })
    return evaluations


def build_card(run: Path, source: Path, name: str, version: str) -> dict[str, Any]:
    """The model card of a published version."""
    config_path = run / runs.RESOLVED_CONFIG
    config = yaml.safe_load(config_path.read_text(encoding="utf-8")) if config_path.is_file() else None
    info = runs.read_info(run)
    model_config = json.loads((source / "config.json").read_text(encoding="utf-8"))
    task = SERVING_TASKS.get(str(info.get("task") or (config or {}).get("task")))
    if task is None:
        architectures = model_config.get("architectures") or []
        task = "classify" if any("SequenceClassification" in a for a in architectures) else "generate"
    preprocessing_path = source / "preprocessing.json"
    evaluations = run_evaluations(run)
    return {
        "name": name,
        "version": version,
        "task": task,
        "published_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "run": run.name,
        "architecture": (model_config.get("architectures") or [None])[0],
        "labels": model_config.get("id2label") if task == "classify" else None,
        "metrics": evaluations[0] if evaluations else None,
        "evaluations": evaluations,
        "train_metrics": info.get("train_metrics"),
        "data_hash": info.get("data_hash"),
        "git": info.get("git"),
        "seed": info.get("seed"),
        "config": config,
        "preprocessing": json.loads(preprocessing_path.read_text(encoding="utf-8"))
        if preprocessing_path.is_file() else None,
    }


def card_markdown(card: dict[str, Any]) -> str:
    """A short human-readable card next to the JSON one."""
    lines = [f"# {card['name']} v{card['version']}", "", f"- task: {card['task']}",
             f"- architecture: {card['architecture']}", f"- trained in run: {card['run']}",
             f"- data hash: {card['data_hash']}", f"- published: {card['published_at']}"]
    if card.get("labels"):
        lines.append(f"- labels: {', '.join(str(v) for v in card['labels'].values())}")
    metrics = card.get("metrics") or {}
    if metrics:
        lines += ["", "| metric | value |", "|---|---|"]
        lines += [f"| {key} | {value:.4f} |" if isinstance(value, float) else f"| {key} | {value} |"
                  for key, value in metrics.items()]
    others = (card.get("evaluations") or [])[1:]
    if others:
        lines += ["", "Other evaluations of the run:", ""]
        lines += [f"- {other.get('data') or other['split']}: n {other.get('n')}" + "".join(
            f", {key} {other[key]:.4f}" for key in ("accuracy", "roc_auc", "perplexity")
            if isinstance(other.get(key), float)) for other in others]
    return "\n".join(lines) + "\n"


def check_name(what: str, value: str) -> None:
    """Names and versions are directory names the server accepts: no paths, nothing hidden."""
    if not re.fullmatch(NAME_PATTERN, value):
        raise PublishError(
            f"{what} {value!r} is not valid: up to 64 letters, digits, '_', '.' or '-', "
            "starting with a letter or digit"
        )


def publish(run: Path, name: str, repository: Path, version: str | None = None) -> Path:
    """Copy the run's model into ``<repository>/<name>/<version>`` with its card; return that directory."""
    source = model_source(run)
    if runs.read_info(run).get("task") == "rtd":
        raise PublishError(
            f"{run} is a replaced-token detection (rtd) run: a pretrained encoder, not a model to serve; "
            "fine-tune it (task classify, model.from_pretrained pointing at the run) and publish that"
        )
    check_name("name", name)
    if version is not None:
        check_name("version", version)
        if version == "latest":
            raise PublishError("version 'latest' is reserved: the server reads it as the highest version")
    target_root = repository / name
    version = version or next_version(target_root)
    target = target_root / version
    if target.exists():
        raise PublishError(f"{target} already exists; versions are immutable, publish under a new one")
    card = build_card(run, source, name, version)
    partial = target_root / f".{version}.partial"
    try:
        shutil.rmtree(partial, ignore_errors=True)
        shutil.copytree(source, partial, ignore=shutil.ignore_patterns("training_args.bin"))
        (partial / "model_card.json").write_text(
            json.dumps(card, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
        )
        (partial / "README.md").write_text(card_markdown(card), encoding="utf-8")
        partial.rename(target)
    except OSError as error:
        shutil.rmtree(partial, ignore_errors=True)
        reason = error.strerror or str(error)
        raise PublishError(f"cannot write {target} (model repository {repository}): {reason}") from None
    return target
