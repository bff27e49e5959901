"""Exact resume from a checkpoint, and 2-process DDP (torchrun, gloo) against 1 process."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from shoplm.training import load_train_config, run_training
from shoplm.training.run_dir import RunDirectoryError
from tests.training.conftest import logged_losses, tiny_config, write_config


def shoplm(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "shoplm", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600, check=False)


def weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(run / "final" / "model.safetensors")


@pytest.mark.parametrize("task", ["classify", "mlm", "rtd"])
def test_resume_from_a_checkpoint_reproduces_the_uninterrupted_run(
    tmp_path: Path, reviews_dir: Path, task: str
) -> None:
    # Dropout on: resuming must restore the RNG state too, not only weights and optimizer (and for
    # mlm and rtd the masks and the generator's samples, which the RNG also draws).
    config = tiny_config(tmp_path / "full", reviews_dir, task=task, model={"dropout": 0.1})
    full = run_training(load_train_config(write_config(tmp_path / "full.yaml", config))).run_dir
    # A run that "crashed" after step 3: its directory as it was then.
    crashed = tmp_path / "crashed"
    shutil.copytree(full, crashed, ignore=shutil.ignore_patterns("checkpoint-6", "final"))
    resumed_config = write_config(tmp_path / "resumed.yaml", {**config, "output_dir": str(crashed)})

    with pytest.raises(RunDirectoryError, match="--resume"):
        run_training(load_train_config(resumed_config))
    run_training(load_train_config(resumed_config), resume=True)

    expected, actual = weights(full), weights(crashed)
    assert expected.keys() == actual.keys()
    for name in expected:
        torch.testing.assert_close(actual[name], expected[name], rtol=0, atol=1e-6, msg=name)
    assert logged_losses(crashed / "checkpoint-6") == pytest.approx(logged_losses(full / "checkpoint-6"), abs=1e-6)


def test_resume_without_a_checkpoint_is_a_clear_error(tmp_path: Path, reviews_dir: Path) -> None:
    config = write_config(tmp_path / "c.yaml", tiny_config(tmp_path / "fresh", reviews_dir))

    done = shoplm("train", str(config), "--resume", cwd=tmp_path)

    assert done.returncode == 2
    assert "nothing to resume" in done.stderr and "Traceback" not in done.stderr


@pytest.fixture(scope="module")
def ddp_runs(tmp_path_factory: pytest.TempPathFactory, reviews_dir: Path) -> tuple[Path, Path]:
    """The same global batch of 8: one process of 8, and two processes of 4 under torchrun."""
    root = tmp_path_factory.mktemp("ddp")
    training = {"max_steps": 8, "eval_strategy": "no", "save_strategy": "steps", "save_steps": 8}
    single = tiny_config(root / "single", reviews_dir, training={**training, "batch_size": 8})
    double = tiny_config(root / "double", reviews_dir, training={**training, "batch_size": 4})
    for name, config, extra in (("single", single, []), ("double", double, ["--nproc", "2"])):
        done = shoplm("train", str(write_config(root / f"{name}.yaml", config)), *extra, cwd=root)
        assert done.returncode == 0, done.stderr[-3000:]
    return root / "single", root / "double"


def test_two_process_ddp_follows_the_single_process_loss_curve(ddp_runs: tuple[Path, Path]) -> None:
    single, double = ddp_runs

    one, two = logged_losses(single / "checkpoint-8"), logged_losses(double / "checkpoint-8")

    assert len(one) == len(two) == 8
    # Same data order, same initial weights, gradients averaged across the two halves: only the
    # summation order differs, so the curves agree to float32 rounding.
    assert two == pytest.approx(one, rel=1e-3)
    info = json.loads((double / "run_info.json").read_text())
    assert info["world_size"] == 2


def test_a_ddp_checkpoint_loads_like_a_single_process_one(ddp_runs: tuple[Path, Path]) -> None:
    single, double = ddp_runs

    one, two = weights(single), weights(double)

    assert one.keys() == two.keys()
    # Adam's normalised steps turn rounding differences in near-zero gradients into differences
    # of up to a few learning-rate steps; a different data order or doubled gradients would
    # move the weights by far more.
    assert max(float((one[k] - two[k]).abs().max()) for k in one) < 1e-2
