"""Small real review data and tiny training configs shared by the training tests."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from shoplm.data import canonical_reviews_dir
from shoplm.evaluation import load_log_history

ROWS_PER_SPLIT = {"train": 240, "validation": 60, "test": 60}


@pytest.fixture(scope="session")
def reviews_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A few hundred rows of each split of the canonical review corpus, both labels in each."""
    return balanced_subset(canonical_reviews_dir(), tmp_path_factory.mktemp("reviews"))


def balanced_subset(source: Path, target: Path) -> Path:
    """``ROWS_PER_SPLIT`` rows of each split of ``source`` in ``target``, the labels alternating."""
    target.mkdir(parents=True, exist_ok=True)
    for split, count in ROWS_PER_SPLIT.items():
        rows = [json.loads(line) for line in (source / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()]
        by_label = [[row for row in rows if row["label"] == label][: count // 2] for label in (0, 1)]
        mixed = [row for pair in itertools.zip_longest(*by_label) for row in pair if row is not None]
        (target / f"{split}.jsonl").write_text(
            "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in mixed), encoding="utf-8"
        )
    return target


def tiny_config(run_dir: Path, data_dir: Path, task: str = "classify", **sections: Any) -> dict[str, Any]:
    """A training config that trains in seconds: 2 layers, 32 wide, a few steps."""
    causal = task in ("clm", "chat")
    config: dict[str, Any] = {
        "task": task,
        "output_dir": str(run_dir),
        "seed": 7,
        "data": {"dir": str(data_dir)},
        "model": {
            "architecture": "gpt2" if causal else "roberta", "hidden_size": 32, "num_layers": 2, "num_heads": 2,
            "max_positions": 64, "dropout": 0.0,
        },
        "tokenizer": {"kind": "bpe" if causal else "wordpiece", "vocab_size": 400, "min_frequency": 1},
        "preprocessing": {"padding": {"max_length": 64}},
        "training": {
            "max_steps": 6, "batch_size": 8, "eval_batch_size": 32, "logging_steps": 1, "learning_rate": 1e-3,
            "eval_strategy": "steps", "eval_steps": 3, "save_strategy": "steps", "save_steps": 3,
            "save_total_limit": 3,
        },
    }
    for name, values in sections.items():
        config[name] = {**config.get(name, {}), **values} if isinstance(values, dict) else values
    return config


def fine_tune_config(run_dir: Path, data_dir: Path, pretrained: Path, **sections: Any) -> dict[str, Any]:
    """A tiny classify config that starts from ``pretrained``'s final model, with its tokenizer,
    preprocessing and shape (``sections`` add to it, as in :func:`tiny_config`)."""
    model = {"from_pretrained": str(pretrained), **sections.pop("model", {})}
    config = tiny_config(run_dir, data_dir, model=model, **sections)
    del config["tokenizer"]
    del config["preprocessing"]
    for key in ("architecture", "hidden_size", "num_layers", "num_heads", "max_positions", "dropout"):
        config["model"].pop(key)
    return config


def logged_losses(run_or_checkpoint: Path) -> list[float]:
    """The training losses the Trainer logged, step by step."""
    return [entry["loss"] for entry in load_log_history(run_or_checkpoint) if "loss" in entry]


def shoplm(*args: str, cwd: Path, launcher: list[str] | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m shoplm ARGS`` as a user runs it (``launcher`` replaces ``python``, e.g. torchrun)."""
    command = [*(launcher or [sys.executable]), "-m", "shoplm", *args]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=600, check=False)


def write_config(path: Path, config: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    return path
