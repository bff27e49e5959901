"""The run directory: what a run was (config, data, code, seed) and what it produced.

    <run>/resolved_config.yaml   the validated config with every default filled in
    <run>/run_info.json          git commit, data hash, seed, processes, device, precision,
                                 versions, timings
    <run>/tensorboard/           TensorBoard event files
    <run>/tokenizer/             the tokenizer trained for a model built from scratch
    <run>/checkpoint-<step>/     resumable checkpoints (optimizer, scheduler, RNG, data position)
    <run>/final/                 the final model, its tokenizer and preprocessing.json
"""

from __future__ import annotations

import json
import platform
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import transformers
import yaml
from transformers import TrainingArguments

from shoplm import __version__
from shoplm.training.config import TrainConfig, TrainingSpec
from shoplm.training.time_budget import CHECKPOINT_FILE as TIME_BUDGET_FILE

RESOLVED_CONFIG = "resolved_config.yaml"
RUN_INFO = "run_info.json"
TENSORBOARD_DIR = "tensorboard"
TOKENIZER_DIR = "tokenizer"
FINAL_MODEL_DIR = "final"
OWNED_DIRS = (TOKENIZER_DIR, FINAL_MODEL_DIR, TENSORBOARD_DIR)


class RunDirectoryError(RuntimeError):
    """The run directory holds another run's state; the message says how to proceed."""


def checkpoints(run_dir: Path) -> list[Path]:
    """The run's checkpoints, oldest first."""
    found = [p for p in run_dir.glob("checkpoint-*") if p.is_dir() and p.name.split("-")[-1].isdigit()]
    return sorted(found, key=lambda p: int(p.name.split("-")[-1]))


def check_run_dir(
    run_dir: Path, *, resume: bool | Path, overwrite: bool, training: TrainingSpec | None = None
) -> list[Path]:
    """Refuse to start (or resume) where that would clobber another run, or resume a run that has
    nothing left to train under ``training``'s limits; return the run's checkpoints.

    ``resume`` is True (the run's newest checkpoint) or a checkpoint directory. Changes nothing.
    """
    if resume is not False and overwrite:
        raise RunDirectoryError("--overwrite starts the run again and --resume continues it; pass one of them")
    if run_dir.exists() and not run_dir.is_dir():
        raise RunDirectoryError(f"the run directory {run_dir} is a file; give output_dir a directory")
    existing = checkpoints(run_dir) if run_dir.is_dir() else []
    if isinstance(resume, Path):
        if not (resume / "trainer_state.json").is_file():
            raise RunDirectoryError(f"cannot resume from {resume}: not a checkpoint (no trainer_state.json)")
        _check_steps_left(resume, training)
    elif resume and not existing:
        raise RunDirectoryError(f"nothing to resume: {run_dir} has no checkpoint-* directory")
    elif resume:
        _check_steps_left(existing[-1], training)
    if existing and resume is False and not overwrite:
        raise RunDirectoryError(
            f"{run_dir} already holds checkpoints ({existing[-1].name}); pass --resume to continue that run "
            "or --overwrite to start again"
        )
    if (run_dir / FINAL_MODEL_DIR).is_dir() and resume is False and not overwrite:
        # A run saved without checkpoints leaves only its final model; starting again would replace it.
        raise RunDirectoryError(
            f"{run_dir} already holds a trained model ({FINAL_MODEL_DIR}/); pass --overwrite to train again "
            "or choose another output_dir"
        )
    return existing


def _check_steps_left(checkpoint: Path, training: TrainingSpec | None) -> None:
    """Refuse a checkpoint at the end of the run: at ``max_steps``, or with the time budget spent.
    The Trainer would take one more step from it anyway. Runs counted in epochs end by themselves."""
    if training is None:
        return
    try:
        step = int(json.loads((checkpoint / "trainer_state.json").read_text(encoding="utf-8"))["global_step"])
        budget = checkpoint / TIME_BUDGET_FILE
        spent = float(json.loads(budget.read_text(encoding="utf-8"))["elapsed_seconds"]) if budget.is_file() else 0.0
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise RunDirectoryError(f"cannot resume from {checkpoint}: unreadable training state ({error})") from None
    if training.max_steps > 0 and step >= training.max_steps:
        raise RunDirectoryError(
            f"nothing left to train: {checkpoint.name} is at step {step} and training.max_steps is "
            f"{training.max_steps}; raise max_steps to train on, or pass --overwrite to start again"
        )
    minutes = training.time_budget_minutes
    if minutes is not None and spent >= minutes * 60:
        raise RunDirectoryError(
            f"nothing left to train: {checkpoint.name} has spent {spent / 60:.2f} minutes and "
            f"training.time_budget_minutes is {minutes:g}; raise the budget to train on, or pass --overwrite "
            "to start again"
        )


def prepare_run_dir(
    run_dir: Path, *, resume: bool | Path, overwrite: bool, training: TrainingSpec | None = None
) -> None:
    """:func:`check_run_dir`, then clear what an ``overwrite`` replaces and create the directory."""
    existing = check_run_dir(run_dir, resume=resume, overwrite=overwrite, training=training)
    if overwrite and resume is False:
        # Only what a run writes goes; a stale tokenizer or checkpoint must not leak into the new run.
        for path in [*existing, *(run_dir / name for name in OWNED_DIRS)]:
            shutil.rmtree(path, ignore_errors=True)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise RunDirectoryError(f"cannot create the run directory {run_dir}: {error.strerror or error}") from None


def git_commit(cwd: Path | None = None) -> dict[str, Any]:
    """The commit of the code that ran and whether the tree had local changes (None outside git)."""

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=True)
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip()

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no") if commit else None
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


def write_start(
    run_dir: Path, config: TrainConfig, data_hash: str, args: TrainingArguments, command: list[str]
) -> None:
    """Record the resolved config and the run's identity before training starts."""
    (run_dir / RESOLVED_CONFIG).write_text(
        yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False, allow_unicode=True), encoding="utf-8"
    )
    info = {
        "task": config.task,
        "seed": config.seed,
        "data_hash": data_hash,
        "git": git_commit(Path(__file__).parent),
        "world_size": args.world_size,
        # What the run really trained on, after "auto" was resolved.
        "device": str(args.device),
        "mixed_precision": "bf16" if args.bf16 else "fp16" if args.fp16 else "no",
        "distributed_backend": dist.get_backend() if dist.is_available() and dist.is_initialized() else None,
        "command": command,
        "versions": {
            "shoplm": __version__, "torch": torch.__version__, "transformers": transformers.__version__,
            "python": platform.python_version(),
        },
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    _update_info(run_dir, info)


def write_finish(run_dir: Path, metrics: dict[str, Any], model_wrapper: str) -> None:
    """Add the training metrics (runtime, samples/s, final loss) to ``run_info.json``, and the
    class the Trainer wrapped the model in (DistributedDataParallel, FSDP; the model's own class
    when nothing wrapped it)."""
    _update_info(run_dir, {
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "train_metrics": metrics, "model_wrapper": model_wrapper,
    })


def read_info(run_dir: Path) -> dict[str, Any]:
    """``run_info.json`` of a run ({} when missing)."""
    path = run_dir / RUN_INFO
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def _update_info(run_dir: Path, fields: dict[str, Any]) -> None:
    info = read_info(run_dir) | fields
    (run_dir / RUN_INFO).write_text(json.dumps(info, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def check_checkpoint_fits(checkpoint: Path, model: torch.nn.Module) -> None:
    """Refuse a checkpoint whose weights do not fit ``model`` (another config's run, say).

    Reads only the safetensors header. Weights the checkpoint leaves out (tied ones) are fine;
    a weight of another shape, or a checkpoint without any of the model's weights, is not.
    """
    from safetensors import safe_open

    weights = checkpoint / "model.safetensors"
    if not weights.is_file():  # an adapter-only (LoRA) or sharded checkpoint: transformers checks it
        return
    expected = {name: tuple(tensor.shape) for name, tensor in model.state_dict().items()}
    with safe_open(str(weights), framework="pt") as saved:
        shapes = {name: tuple(saved.get_slice(name).get_shape()) for name in saved.keys()}  # noqa: SIM118
    shared = expected.keys() & shapes.keys()
    wrong = sorted(name for name in shared if expected[name] != shapes[name])
    if not shared:
        detail = "none of its weights has a name of this config's model"
    elif wrong:
        first = wrong[0]
        detail = f"{first} is {list(shapes[first])} there and {list(expected[first])} in this config's model"
        detail += f", and {len(wrong) - 1} more weights differ" if len(wrong) > 1 else ""
    else:
        return
    raise RunDirectoryError(f"cannot resume from {checkpoint}: it holds another model ({detail})")
