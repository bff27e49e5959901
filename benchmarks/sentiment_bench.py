"""The sentiment recipe against its two baselines, on the canonical test split, in one run.

    .venv/bin/python benchmarks/sentiment_bench.py [--runs DIR] [--skip-training] [--pretrain mlm|rtd]
                                                   [--pretrain-minutes M | --pretrain-epochs N]

Steps, each timed on this machine:
1. the canonical review split (``shoplm.data.canonical_reviews_dir``);
2. ``shoplm train configs/train/sentiment-mlm.yaml`` (masked-LM pretraining from scratch;
   ``--pretrain rtd`` takes ``sentiment-rtd.yaml``, replaced-token detection, instead);
3. ``shoplm train configs/train/sentiment.yaml`` (classifier fine-tuning of stage 2's model);
4. ``shoplm eval <run> --split test --json``;
5. the baselines: character TF-IDF + logistic regression, and SnowNLP's naive Bayes retrained
   on the train split (``benchmarks/sentiment_baselines.py``).

Targets: ROC-AUC >= 0.93 and accuracy >= 0.87 on the test split, with stages 2 and 3 within 30
minutes of wall time (each trains for at most the time budget its config sets). Writes
``benchmarks/results/sentiment.json`` and a table in ``benchmarks/README.md``. The recipe trains
with ``mixed_precision: auto``: bf16 on CPUs with AVX512-BF16 or AMX, float32 elsewhere; a float32
run writes ``sentiment_fp32.json`` and its own table instead, so the two kinds of machine are
reported side by side. ``--pretrain-minutes M`` gives stage 1 a budget of M minutes instead of the
config's, ``--pretrain-epochs N`` a fixed N epochs and no budget: checks of what more (or less)
pretraining buys. Their results go to ``sentiment_<pretrain><M>min.json`` or
``sentiment_<pretrain><N>ep.json`` (plus the float32 suffix) and the README's tables are left
alone.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.readme_section import replace_section  # noqa: E402
from benchmarks.sentiment_baselines import read_jsonl, snownlp_bayes, tfidf_logreg  # noqa: E402
from shoplm.data import DatasetCard, canonical_reviews_dir  # noqa: E402
from shoplm.training.run_dir import RESOLVED_CONFIG, RUN_INFO  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
TARGETS = {"roc_auc": 0.93, "accuracy": 0.87, "train_minutes": 30.0}
REPORTED = ("accuracy", "roc_auc", "f1", "pr_auc", "log_loss")
# Stage 1 choices: its config and its name in the table (mlm is the recipe).
PRETRAINING = {"mlm": ("sentiment-mlm.yaml", "MLM"), "rtd": ("sentiment-rtd.yaml", "replaced-token detection")}


def stage_config(config: Path, run_dir: Path, overrides: dict[str, Any]) -> Path:
    """`config` with `overrides` and `run_dir` as its output, written beside `run_dir`."""
    data = yaml.safe_load(config.read_text(encoding="utf-8"))
    for key, value in overrides.items():  # a section override changes only the fields it names
        data[key] = {**data.get(key, {}), **value} if isinstance(value, dict) else value
    data["output_dir"] = str(run_dir)
    staged = run_dir.parent / f"{run_dir.name}.yaml"
    staged.parent.mkdir(parents=True, exist_ok=True)
    staged.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return staged


def run_stage(config: Path, run_dir: Path, overrides: dict[str, Any]) -> float:
    """Train one stage through the command line; returns its wall time in seconds."""
    staged = stage_config(config, run_dir, overrides)
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "shoplm", "train", str(staged), "--overwrite"], check=True)
    return time.perf_counter() - started


def evaluate(run_dir: Path) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-m", "shoplm", "eval", str(run_dir), "--split", "test", "--json"],
                          check=True, capture_output=True, text=True)
    return dict(json.loads(done.stdout))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=Path, default=ROOT / "runs" / "bench")
    parser.add_argument("--skip-training", action="store_true", help="Evaluate the runs already in --runs.")
    parser.add_argument("--pretrain", choices=sorted(PRETRAINING), default="mlm",
                        help="Stage 1: masked-LM pretraining (the recipe) or replaced-token detection.")
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--pretrain-minutes", type=float, default=None,
                        help="Stage 1's time budget instead of the config's; results in a file of their own.")
    length.add_argument("--pretrain-epochs", type=int, default=None,
                        help="Stage 1 for this many epochs, no time budget; results in a file of their own.")
    args = parser.parse_args()
    if args.pretrain_epochs is not None and args.pretrain_epochs < 1:
        parser.error("--pretrain-epochs must be at least 1")
    if args.pretrain_minutes is not None and args.pretrain_minutes <= 0:
        parser.error("--pretrain-minutes must be above 0")
    data_dir = canonical_reviews_dir()
    pretrain_config = ROOT / "configs" / "train" / PRETRAINING[args.pretrain][0]
    pretrain_run, cls_run = args.runs / pretrain_config.stem, args.runs / "sentiment"
    timings: dict[str, float] = {}
    if not args.skip_training:
        length: dict[str, Any] = {}
        if args.pretrain_minutes is not None:
            length = {"training": {"time_budget_minutes": args.pretrain_minutes}}
        elif args.pretrain_epochs is not None:
            length = {"training": {"epochs": args.pretrain_epochs, "time_budget_minutes": None}}
        timings["pretrain_seconds"] = run_stage(pretrain_config, pretrain_run, length)
        timings["finetune_seconds"] = run_stage(
            ROOT / "configs/train/sentiment.yaml", cls_run, {"model": {"from_pretrained": str(pretrain_run)}}
        )
    ours = evaluate(cls_run)
    train_rows, test_rows = read_jsonl(data_dir / "train.jsonl"), read_jsonl(data_dir / "test.jsonl")
    validation_rows = read_jsonl(data_dir / "validation.jsonl")
    baselines = {
        "tfidf_logreg": tfidf_logreg(train_rows, test_rows, validation_rows),
        "snownlp_bayes": snownlp_bayes(train_rows, test_rows),
    }
    minutes = sum(timings.values()) / 60 if timings else None
    pretrain_info = read_run_info(pretrain_run)
    precision = pretrain_info["mixed_precision"]
    result = {
        "machine": {"cpus": os.cpu_count(), "processor": cpu_model(), "precision": precision},
        "data": {"content_hash": DatasetCard.load(data_dir).content_hash, "n_train": len(train_rows),
                 "n_test": len(test_rows)},
        "pretraining": args.pretrain,
        **stage_length("pretrain", pretrain_run, pretrain_info),
        **stage_length("finetune", cls_run, read_run_info(cls_run)),
        "timings": timings,
        "train_minutes": minutes,
        "shoplm": {key: ours.get(key) for key in REPORTED},
        "baselines": {name: {key: value.get(key) for key in (*REPORTED, "train_seconds")}
                      for name, value in baselines.items()},
        "targets": TARGETS,
        "met": {
            "roc_auc": ours["roc_auc"] >= TARGETS["roc_auc"],
            "accuracy": ours["accuracy"] >= TARGETS["accuracy"],
            "train_minutes": None if minutes is None else minutes <= TARGETS["train_minutes"],
        },
    }
    suffix = {"bf16": "", "no": "_fp32"}.get(precision, f"_{precision}")
    name = "sentiment"
    if args.pretrain_minutes is not None:
        name = f"sentiment_{args.pretrain}{args.pretrain_minutes:g}min"
    elif args.pretrain_epochs is not None:
        name = f"sentiment_{args.pretrain}{args.pretrain_epochs}ep"
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}{suffix}.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    table = markdown(result)
    if name == "sentiment":
        replace_section(ROOT / "benchmarks" / "README.md", f"sentiment_bench{suffix}", table)
    print(table)


def read_run_info(run_dir: Path) -> dict[str, Any]:
    info: dict[str, Any] = json.loads((run_dir / RUN_INFO).read_text(encoding="utf-8"))
    return info


def stage_length(stage: str, run_dir: Path, run_info: dict[str, Any]) -> dict[str, Any]:
    """A stage's time budget (minutes; None without one) and the epochs it trained, from its run
    directory's resolved config and the training metrics in its run_info.json (``run_info``)."""
    resolved = yaml.safe_load((run_dir / RESOLVED_CONFIG).read_text(encoding="utf-8"))
    trained = run_info.get("train_metrics", {})
    return {
        f"{stage}_budget_minutes": resolved["training"].get("time_budget_minutes"),
        f"{stage}_epochs": round(float(trained.get("epoch", resolved["training"]["epochs"])), 2),
    }


def cpu_model() -> str:
    """The processor's model name (Linux), else what the platform module knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def markdown(result: dict[str, Any]) -> str:
    """The benchmark as a Markdown table."""
    minutes = result["train_minutes"]
    lines = [
        f"Canonical review split: {result['data']['n_train']} train / {result['data']['n_test']} test rows; "
        f"{result['machine']['cpus']} CPU cores ({machine_words(result['machine'])}). Training wall time "
        "(both stages): "
        + (f"{minutes:.1f} min" if minutes is not None else "not measured in this run") + ".",
        "",
        "| model | accuracy | ROC-AUC | F1 | PR-AUC | log loss |",
        "|---|---|---|---|---|---|",
    ]
    pretraining = PRETRAINING[result.get("pretraining", "mlm")][1] + stage_words(result, "pretrain")
    finetuning = stage_words(result, "finetune")
    name = f"shoplm (pre-LN RoBERTa from scratch: {pretraining}, then fine-tune with an n-gram bag{finetuning})"
    rows = {name: result["shoplm"],
            **result["baselines"]}
    for name, metrics in rows.items():
        cells = [f"{metrics[key]:.4f}" if metrics.get(key) is not None else "-" for key in REPORTED]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    met = result["met"]
    lines += ["", "Targets: ROC-AUC >= 0.93 " + verdict(met["roc_auc"]) + ", accuracy >= 0.87 "
              + verdict(met["accuracy"]) + ", training <= 30 min " + verdict(met["train_minutes"]) + "."]
    return "\n".join(lines)


def stage_words(result: dict[str, Any], stage: str) -> str:
    """" for at most 20 minutes, 4.98 epochs here" or " for 3 epochs": how long a stage trained."""
    epochs, budget = result.get(f"{stage}_epochs"), result.get(f"{stage}_budget_minutes")
    if budget is not None:
        return f" for at most {budget:g} minutes, {epochs:g} epochs here"
    return "" if epochs is None else f" for {epochs:g} epochs"


def verdict(met: bool | None) -> str:
    return "not measured" if met is None else "met" if met else "**not met**"


def machine_words(machine: dict[str, Any]) -> str:
    """"AMD EPYC, trained in float32": what the training time depends on most."""
    precision = "float32" if machine["precision"] == "no" else machine["precision"]
    return f"{machine['processor']}, trained in {precision}"


if __name__ == "__main__":
    main()
