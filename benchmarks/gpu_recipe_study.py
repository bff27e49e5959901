"""What the sentiment recipe's accuracy does with a longer, deeper, wider or faster stage 1, on a GPU.

On 2 CPU cores one run of the recipe takes 30 minutes and its accuracy varies by about a point
between runs, so a change worth half a point cannot be seen there. A GPU runs the same two stages
(``configs/train/sentiment-mlm.yaml``, then ``sentiment.yaml``) in a minute or two, several at once,
so each stage-1 variant can be fine-tuned with several seeds::

    python benchmarks/gpu_recipe_study.py --data REVIEWS_DIR --news NEWS_JSONL \
        [--jobs 8] [--deadline-minutes 8] [--out benchmarks/results/gpu_recipe_study.json]

``REVIEWS_DIR`` is the canonical split (``shoplm data prepare --corpus reviews``) and
``NEWS_JSONL`` the news corpus's train split (``shoplm data prepare --corpus news``): the same text
as the recipe's ``extra_corpora: [news]``. Stage 1 trains for a fixed number of epochs (no time
budget: on a GPU the budget would buy far more steps than a CPU gets), fine-tuning keeps the
recipe's 3 epochs without its budget. Every run goes through ``python -m shoplm train`` and
``shoplm eval --split test --json``; the results file is rewritten after each run, so a run cut
short by the deadline still leaves what finished.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.sentiment_bench import stage_config  # noqa: E402

CONFIGS = ROOT / "configs" / "train"
FINETUNE_SEEDS = (42, 7, 1)
WIDE = {"hidden_size": 384, "num_heads": 6, "intermediate_size": 1536}
# Stage-1 variants: name -> overrides of sentiment-mlm.yaml (the recipe reaches about 5 epochs in
# its 20 minutes on an AVX512-BF16 CPU, about 9 on the fastest bf16 CPU seen).
STAGE1 = {
    "mlm-5ep": {"training": {"epochs": 5}},
    "mlm-10ep": {"training": {"epochs": 10}},
    "mlm-20ep": {"training": {"epochs": 20}},
    "mlm-10ep-6layers": {"training": {"epochs": 10}, "model": {"num_layers": 6}},
    "mlm-10ep-384wide": {"training": {"epochs": 10}, "model": WIDE},
    "mlm-10ep-lr2e-3": {"training": {"epochs": 10, "learning_rate": 2.0e-3}},
}


def staged_config(base: str, overrides: dict[str, Any], data: dict[str, Any], run_dir: Path,
                  max_steps: int) -> Path:
    """The base config with `overrides`, `data` in place of its data source and no time budget;
    `max_steps` (when above 0) caps the training, a check of the plumbing."""
    training: dict[str, Any] = {"time_budget_minutes": None, **({"max_steps": max_steps} if max_steps > 0 else {})}
    # The base configs name a bundled corpus; None and [] clear it for the prepared files.
    source = {"corpus": None, "extra_corpora": [], **data}
    merged = {**overrides, "data": source, "training": {**overrides.get("training", {}), **training}}
    return stage_config(CONFIGS / base, run_dir, merged)


def shoplm(*args: str, log: Path) -> str:
    """One shoplm command; its stderr goes to `log`, a failure raises with the log's tail."""
    with log.open("w", encoding="utf-8") as stderr:
        done = subprocess.run([sys.executable, "-m", "shoplm", *args], stdout=subprocess.PIPE, stderr=stderr,
                              text=True, cwd=ROOT)
    if done.returncode != 0:
        tail = log.read_text(encoding="utf-8", errors="replace")[-3000:]
        raise RuntimeError(f"shoplm {' '.join(args)} exited with {done.returncode}:\n{tail}")
    return done.stdout


def pretrain(name: str, work: Path, reviews: Path, news: Path, max_steps: int) -> dict[str, Any]:
    run_dir = work / name
    data = {"dir": str(reviews), "extra_train": [str(news)], "max_train_samples": 20000, "max_eval_samples": 500}
    config = staged_config("sentiment-mlm.yaml", STAGE1[name], data, run_dir, max_steps)
    started = time.perf_counter()
    shoplm("train", str(config), "--overwrite", log=work / f"{name}.log")
    info = json.loads((run_dir / "run_info.json").read_text(encoding="utf-8"))
    return {"seconds": round(time.perf_counter() - started, 1), "device": info.get("device"),
            "mixed_precision": info.get("mixed_precision"),
            "train_metrics": info.get("train_metrics")}


def finetune(stage1: str, seed: int, work: Path, reviews: Path, max_steps: int) -> dict[str, Any]:
    run_dir = work / f"{stage1}-ft{seed}"
    overrides = {"seed": seed, "model": {"from_pretrained": str(work / stage1)}}
    config = staged_config("sentiment.yaml", overrides, {"dir": str(reviews)}, run_dir, max_steps)
    started = time.perf_counter()
    shoplm("train", str(config), "--overwrite", log=work / f"{run_dir.name}.log")
    seconds = time.perf_counter() - started
    metrics, validation = (evaluate(run_dir, split, work) for split in ("test", "validation"))
    return {"seed": seed, "seconds": round(seconds, 1), "test_accuracy": metrics["accuracy"],
            "test_roc_auc": metrics["roc_auc"], "validation_accuracy": validation["accuracy"]}


def evaluate(run_dir: Path, split: str, work: Path) -> dict[str, Any]:
    report = shoplm("eval", str(run_dir), "--split", split, "--json", log=work / f"{run_dir.name}.eval-{split}.log")
    return dict(json.loads(report))


def last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else text


def summarise(results: dict[str, Any]) -> None:
    for variant in results["variants"].values():
        runs = variant["finetunes"]
        for key in ("test_accuracy", "test_roc_auc", "validation_accuracy"):
            values = [run[key] for run in runs]
            variant[f"mean_{key}"] = round(statistics.fmean(values), 4) if values else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="The canonical review split (a prepared directory).")
    parser.add_argument("--news", type=Path, required=True, help="The news corpus's train split (JSONL).")
    parser.add_argument("--jobs", type=int, default=8, help="Runs at once on the one GPU.")
    parser.add_argument("--deadline-minutes", type=float, default=8.0, help="Start no run after this.")
    parser.add_argument("--variants", nargs="*", default=list(STAGE1), choices=sorted(STAGE1))
    parser.add_argument("--max-steps", type=int, default=0, help="Cap every run at this many steps (a quick check).")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "gpu_recipe_study.json")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="shoplm-gpu-study-"))
    deadline = time.monotonic() + args.deadline_minutes * 60
    results: dict[str, Any] = {"finetune_seeds": list(FINETUNE_SEEDS), "errors": [],
                               "variants": {name: {"overrides": STAGE1[name], "finetunes": []}
                                            for name in args.variants}}
    started = time.monotonic()

    def write() -> None:
        summarise(results)
        results["wall_seconds"] = round(time.monotonic() - started, 1)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")

    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        pending: dict[Future[dict[str, Any]], tuple[str, int | None]] = {
            pool.submit(pretrain, name, work, args.data, args.news, args.max_steps): (name, None)
            for name in args.variants
        }
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                name, seed = pending.pop(future)
                try:
                    outcome = future.result()
                except (RuntimeError, OSError, ValueError, KeyError) as error:  # reported; the others go on
                    print(f"FAILED {name} seed {seed}: {error}", flush=True)
                    results["errors"].append(f"{name} seed {seed}: {last_line(str(error))}")
                    continue
                print(name, seed, outcome, f"{time.monotonic() - started:.0f}s", flush=True)
                if seed is None:
                    results["variants"][name]["pretrain"] = outcome
                    if time.monotonic() < deadline:
                        for ft_seed in FINETUNE_SEEDS:
                            job = pool.submit(finetune, name, ft_seed, work, args.data, args.max_steps)
                            pending[job] = (name, ft_seed)
                else:
                    results["variants"][name]["finetunes"].append(outcome)
                write()
    write()
    print(json.dumps({name: {key: value for key, value in variant.items() if key.startswith("mean_")}
                      for name, variant in results["variants"].items()}, indent=2))


if __name__ == "__main__":
    main()
