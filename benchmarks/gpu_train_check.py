"""GPU check of training: bf16 on CUDA, gradient checkpointing, exact resume, NCCL DDP, FSDP.

Run on a machine with CUDA, on a prepared review split (``shoplm data prepare --corpus reviews``)::

    python benchmarks/gpu_train_check.py --data DIR [--out benchmarks/results/gpu_train_check.json]

Every run goes through the real command line (``python -m shoplm train``, ``--nproc``, plain
torchrun, ``shoplm eval``) with the tiny configs of the training tests, and the report takes its
facts from what the runs wrote (``run_info.json``, the logged losses, the saved weights):

* ``bf16``: a 4x256 RoBERTa classifier trained with ``mixed_precision: auto`` on the GPU, then
  evaluated on the test split;
* ``gradient_checkpointing``: the same tiny run with and without it (dropout off): same losses;
* ``resume``: an mlm run interrupted after step 3 and resumed, against the uninterrupted run;
* ``ddp``: one process of batch 8 against NCCL processes of batch 4 under ``--nproc 2``
  (which NCCL refuses on a machine with one GPU: the report keeps its message) and plain
  torchrun with one process;
* ``fsdp``: a classifier sharded with FSDP under torchrun against the same run in one plain
  process: losses and the final model's test metrics.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.training.conftest import (  # noqa: E402
    balanced_subset,
    logged_losses,
    shoplm,
    tiny_config,
    write_config,
)

RUN_FACTS = ("world_size", "device", "mixed_precision", "distributed_backend", "model_wrapper")


def failure(done: subprocess.CompletedProcess[str]) -> str:
    """The lines of a failed command that say why: the first error lines of its stderr (under
    torchrun the child's own message comes before the launcher's), and the last lines."""
    lines = [line.strip() for line in done.stderr.splitlines() if line.strip()]
    said = [line for line in lines if line.lower().startswith("error") or "Error:" in line or "WARN" in line]
    return "\n".join(dict.fromkeys(said[:4] + lines[-2:]))


def train(root: Path, name: str, config: dict[str, Any], *extra: str, launcher: list[str] | None = None) -> dict:
    """Train ``config`` through the CLI; the run's facts, losses and time, or why it failed."""
    root.mkdir(parents=True, exist_ok=True)
    path = write_config(root / f"{name}.yaml", config)
    started = time.perf_counter()
    done = shoplm("train", str(path), *extra, cwd=root, launcher=launcher)
    result: dict[str, Any] = {"exit_code": done.returncode, "wall_s": round(time.perf_counter() - started, 1)}
    run = Path(config["output_dir"])
    if done.returncode != 0:
        result["error"] = failure(done)
        return result
    info = json.loads((run / "run_info.json").read_text())
    result.update({key: info.get(key) for key in RUN_FACTS})
    result["train_samples_per_second"] = info["train_metrics"].get("train_samples_per_second")
    result["losses"] = [round(loss, 5) for loss in logged_losses(run)]  # from the newest checkpoint
    return result


def evaluate(run: Path, data: Path) -> dict:
    done = shoplm("eval", str(run), "--data", str(data / "test.jsonl"), "--json", cwd=run.parent)
    if done.returncode != 0:
        return {"exit_code": done.returncode, "error": failure(done)}
    metrics = json.loads(done.stdout)
    return {key: metrics.get(key) for key in ("accuracy", "roc_auc", "f1", "n")}


def max_difference(a: list[float], b: list[float]) -> float | None:
    return max(abs(x - y) for x, y in zip(a, b, strict=True)) if a and len(a) == len(b) else None


def weight_difference(one: Path, two: Path) -> float:
    first, second = load_file(one / "final" / "model.safetensors"), load_file(two / "final" / "model.safetensors")
    return max(float((first[k].float() - second[k].float()).abs().max()) for k in first)


def check_bf16(root: Path, data: Path) -> dict:
    config = tiny_config(
        root / "bf16", data,
        model={"hidden_size": 256, "num_layers": 4, "num_heads": 4, "max_positions": 128, "dropout": 0.1},
        tokenizer={"vocab_size": 6000, "min_frequency": 2},
        preprocessing={"padding": {"max_length": 128}},
        training={"max_steps": 300, "batch_size": 32, "learning_rate": 5e-4, "eval_strategy": "no",
                  "save_strategy": "steps", "save_steps": 300, "logging_steps": 25, "mixed_precision": "auto"},
    )
    result = train(root, "bf16", config)
    if result["exit_code"] == 0:
        weights = load_file(root / "bf16" / "final" / "model.safetensors")
        result["saved_weight_dtypes"] = sorted({str(tensor.dtype) for tensor in weights.values()})
        result["test"] = evaluate(root / "bf16", data)
    return result


def check_gradient_checkpointing(root: Path, data: Path) -> dict:
    plain = train(root, "plain", tiny_config(root / "plain", data))
    checkpointed = train(root, "checkpointed", tiny_config(
        root / "checkpointed", data, training={"gradient_checkpointing": True}))
    return {"plain": plain, "checkpointed": checkpointed,
            "max_loss_difference": max_difference(plain.get("losses", []), checkpointed.get("losses", []))}


def check_resume(root: Path, data: Path) -> dict:
    config = tiny_config(root / "full", data, task="mlm", model={"dropout": 0.1})
    full = train(root, "full", config)
    if full["exit_code"] != 0:
        return {"full": full}
    crashed = root / "crashed"
    shutil.copytree(root / "full", crashed, ignore=shutil.ignore_patterns("checkpoint-6", "final"))
    resumed = train(root, "resumed", {**config, "output_dir": str(crashed)}, "--resume")
    result: dict[str, Any] = {"full": full, "resumed": resumed}
    if resumed["exit_code"] == 0:
        result["max_loss_difference"] = max_difference(
            logged_losses(root / "full" / "checkpoint-6"), logged_losses(crashed / "checkpoint-6"))
        result["max_weight_difference"] = weight_difference(root / "full", crashed)
    return result


def check_ddp(root: Path, data: Path) -> dict:
    training = {"max_steps": 8, "eval_strategy": "no", "save_strategy": "steps", "save_steps": 8}
    single = train(root, "single", tiny_config(root / "single", data, training={**training, "batch_size": 8}))
    two = train(root, "nccl2", tiny_config(root / "nccl2", data, training={**training, "batch_size": 4}),
                "--nproc", "2")
    torchrun_one = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=1"]
    one = train(root, "nccl1", tiny_config(root / "nccl1", data, training={**training, "batch_size": 8}),
                launcher=torchrun_one)
    result: dict[str, Any] = {"single_process": single, "nccl_2_processes": two, "torchrun_1_process": one}
    for name, run in (("nccl_2_processes", two), ("torchrun_1_process", one)):
        result[f"{name}_max_loss_difference"] = max_difference(single.get("losses", []), run.get("losses", []))
    return result


def check_fsdp(root: Path, data: Path, processes: int) -> dict:
    """An FSDP run against the same run in one plain process: same losses, same test metrics."""
    training = {"max_steps": 40, "batch_size": 8 // processes, "eval_strategy": "no", "save_strategy": "steps",
                "save_steps": 40}
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"]
    sharded = train(root, "fsdp", tiny_config(root / "fsdp", data, distributed={"fsdp": True}, training=training),
                    launcher=launcher)
    plain = train(root, "plain", tiny_config(root / "plain", data, training={**training, "batch_size": 8}))
    result: dict[str, Any] = {"processes": processes, "fsdp": sharded, "one_plain_process": plain}
    for directory, run in (("fsdp", sharded), ("plain", plain)):
        if run["exit_code"] == 0:
            run["test"] = evaluate(root / directory, data)
    result["max_loss_difference"] = max_difference(sharded.get("losses", []), plain.get("losses", []))
    return result


CHECKS = {"bf16": check_bf16, "gradient_checkpointing": check_gradient_checkpointing, "resume": check_resume,
          "ddp": check_ddp}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="a prepared review split (train/validation/test)")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "shoplm-gpu-train-check",
                        help="scratch directory for the runs (emptied first)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "gpu_train_check.json")
    parser.add_argument("--dry-run-on-cpu", action="store_true", help="run the same checks without a GPU")
    parser.add_argument("--only", nargs="+", choices=[*CHECKS, "fsdp"], help="run these checks alone")
    args = parser.parse_args()
    if not torch.cuda.is_available() and not args.dry_run_on_cpu:
        sys.exit("no CUDA device: this check needs a GPU (--dry-run-on-cpu tries the script on CPU)")
    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    full = args.data.resolve()
    small = balanced_subset(full, args.work / "small-data")  # the training tests' rows
    report: dict[str, Any] = {
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "gpus": torch.cuda.device_count(), "torch": torch.__version__,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for name, check in CHECKS.items():
        if args.only and name not in args.only:
            continue
        started = time.perf_counter()
        report[name] = check(args.work / name, full if name == "bf16" else small)
        report[name]["check_s"] = round(time.perf_counter() - started, 1)
        args.out.write_text(json.dumps(report, indent=2))  # what finished survives a timeout
        print(f"{name}: done in {report[name]['check_s']} s", flush=True)
    if not args.only or "fsdp" in args.only:
        # FSDP across 2 processes where NCCL runs 2 (several GPUs), else the single-process path.
        two_ran = report.get("ddp", {}).get("nccl_2_processes", {}).get("exit_code") == 0
        report["fsdp"] = check_fsdp(args.work / "fsdp", small, processes=2 if two_ran else 1)
    args.out.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
