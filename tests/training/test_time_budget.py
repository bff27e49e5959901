"""Training for a wall-clock budget: the schedule follows the clock, the run stops when it is spent."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from shoplm.config import ConfigError
from shoplm.evaluation import load_log_history
from shoplm.training import load_train_config, run_training
from shoplm.training.run_dir import checkpoints
from shoplm.training.time_budget import CHECKPOINT_FILE, schedule_factor
from tests.training.conftest import shoplm, tiny_config, write_config

# 240 training rows in batches of 8: 30 steps an epoch, so this cap is 30,000 steps, far more
# than a tiny model takes in the budgets below on any machine.
EPOCHS_CAP = 1000


@pytest.mark.parametrize(
    ("kind", "progress", "expected"),
    [
        ("linear", 0.0, 0.0),
        ("linear", 0.05, 0.5),
        ("linear", 0.1, 1.0),
        ("linear", 0.55, 0.5),
        ("linear", 1.0, 0.0),
        ("cosine", 0.55, 0.5),
        ("cosine", 1.0, 0.0),
        ("constant_with_warmup", 0.05, 0.5),
        ("constant_with_warmup", 0.9, 1.0),
        ("constant", 0.0, 1.0),
    ],
)
def test_schedule_factors_follow_the_named_schedule_over_the_budget(
    kind: str, progress: float, expected: float
) -> None:
    assert schedule_factor(kind, progress, warmup=0.1) == pytest.approx(expected)


def budget_config(run_dir: Path, data_dir: Path, minutes: float, **training: Any) -> dict[str, Any]:
    settings = {
        "max_steps": -1, "epochs": EPOCHS_CAP, "time_budget_minutes": minutes, "warmup_ratio": 0.2,
        "eval_strategy": "no", "save_strategy": "steps", "save_steps": 10**6, **training,
    }
    return tiny_config(run_dir, data_dir, training=settings)


def learning_rates(run: Path) -> dict[int, float]:
    return {entry["step"]: entry["learning_rate"] for entry in load_log_history(run) if "learning_rate" in entry}


def saved_steps(run: Path) -> list[int]:
    return [int(path.name.split("-")[-1]) for path in checkpoints(run)]


def test_a_run_stops_when_its_budget_is_spent_with_the_rate_decayed(tmp_path: Path, reviews_dir: Path) -> None:
    config = budget_config(tmp_path / "run", reviews_dir, minutes=0.1)

    result = run_training(load_train_config(write_config(tmp_path / "c.yaml", config)))

    (last,) = saved_steps(result.run_dir)  # the step that spent the budget is checkpointed
    # Ended by the clock, well before the cap's steps; a busy machine fits fewer steps in 6 s.
    assert 3 <= last < EPOCHS_CAP * 30
    assert (result.final_dir / "model.safetensors").is_file()
    record = json.loads((result.run_dir / f"checkpoint-{last}" / CHECKPOINT_FILE).read_text())
    assert record["elapsed_seconds"] >= record["budget_seconds"] == pytest.approx(6.0)
    rates = [entry["learning_rate"] for entry in load_log_history(result.run_dir) if "learning_rate" in entry]
    peak = rates.index(max(rates))
    # Up during the warm-up, then down: the schedule runs over the budget, not over the cap's steps.
    assert rates[:peak + 1] == sorted(rates[:peak + 1])
    assert rates[peak:] == sorted(rates[peak:], reverse=True)
    assert 0 < peak < len(rates) - 1 and rates[-1] < rates[peak]


def test_a_cap_reached_first_ends_the_schedule_as_a_run_without_a_budget(tmp_path: Path, reviews_dir: Path) -> None:
    # Ten minutes are never spent in 12 steps: the cap ends the run, and the rate must reach the end
    # of its decay there, step for step as transformers' own linear schedule does (a warm-up of
    # exactly 3 steps: transformers rounds the warm-up's steps up, the budget's shares do not).
    rates = []
    for name, minutes in (("budget", 10), ("plain", None)):
        config = budget_config(tmp_path / name, reviews_dir, minutes=minutes, max_steps=12, logging_steps=1,
                               save_steps=12, warmup_ratio=0.25)
        run = run_training(load_train_config(write_config(tmp_path / f"{name}.yaml", config))).run_dir
        rates.append([entry["learning_rate"] for entry in load_log_history(run) if "learning_rate" in entry])
    with_budget, without = rates
    assert len(with_budget) == 12
    assert with_budget == pytest.approx(without)
    assert with_budget[-1] < 0.2 * max(with_budget)  # the last step runs at 1/9 of the peak


def test_a_resumed_run_spends_only_what_is_left(tmp_path: Path, reviews_dir: Path) -> None:
    # Ten minutes are never spent in these 4 steps.
    config = budget_config(tmp_path / "run", reviews_dir, minutes=10, max_steps=4, save_steps=2)
    run = run_training(load_train_config(write_config(tmp_path / "c.yaml", config))).run_dir
    assert saved_steps(run) == [2, 4]
    uninterrupted = learning_rates(run)
    # The run "crashed" after step 2; its record then says 90% of the budget was spent.
    crashed = tmp_path / "crashed"
    shutil.copytree(run / "checkpoint-2", crashed / "checkpoint-2")
    shutil.copytree(run / "tokenizer", crashed / "tokenizer")
    record_path = crashed / "checkpoint-2" / CHECKPOINT_FILE
    record = json.loads(record_path.read_text())
    assert 0 < record["elapsed_seconds"] < record["budget_seconds"]
    record_path.write_text(json.dumps({**record, "elapsed_seconds": 0.9 * record["budget_seconds"]}))
    resumed = write_config(tmp_path / "r.yaml", {**config, "output_dir": str(crashed)})

    run_training(load_train_config(resumed), resume=True)

    # The schedule takes up where the record says. Step 3 runs at the rate the checkpoint's
    # optimizer kept; step 4 at most at the linear decay's rate for 90% of the budget (warm-up 0.2),
    # below the uninterrupted run's, whose step 4 sat at 75% of its cap.
    ceiling = 1e-3 * (1 - 0.9) / (1 - 0.2)
    assert learning_rates(crashed)[4] <= ceiling < uninterrupted[4]


def test_resuming_a_run_that_spent_its_budget_is_refused(tmp_path: Path, reviews_dir: Path) -> None:
    config = budget_config(tmp_path / "run", reviews_dir, minutes=10, max_steps=4, save_steps=2)
    path = write_config(tmp_path / "c.yaml", config)
    run = run_training(load_train_config(path)).run_dir
    # The run "stopped" at step 2 with its budget spent.
    shutil.rmtree(run / "checkpoint-4")
    record_path = run / "checkpoint-2" / CHECKPOINT_FILE
    record = json.loads(record_path.read_text())
    record_path.write_text(json.dumps({**record, "elapsed_seconds": record["budget_seconds"]}))

    done = shoplm("train", str(path), "--resume", cwd=tmp_path)

    # The Trainer would take one more step from it; the run says there is nothing left instead.
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert ("nothing left to train: checkpoint-2 has spent 10.00 minutes and training.time_budget_minutes is 10; "
            "raise the budget") in done.stderr
    assert saved_steps(run) == [2]


def test_two_processes_stop_together_on_rank_zeros_clock(tmp_path: Path, reviews_dir: Path) -> None:
    # If the processes disagreed on the step to stop at, one would wait for the other's gradients
    # forever, and torchrun would not return.
    config = budget_config(tmp_path / "run", reviews_dir, minutes=0.1, batch_size=4, mixed_precision="no")

    done = shoplm("train", str(write_config(tmp_path / "c.yaml", config)), "--nproc", "2", cwd=tmp_path)

    assert done.returncode == 0, done.stderr[-3000:]
    (last,) = saved_steps(tmp_path / "run")
    assert last < EPOCHS_CAP * 30
    assert "time budget: training stops after 0.1 minutes" in done.stderr
    assert f"time budget spent at step {last}, epoch" in done.stdout


def test_a_budget_of_zero_minutes_is_named(tmp_path: Path, reviews_dir: Path) -> None:
    config = budget_config(tmp_path / "run", reviews_dir, minutes=0)

    with pytest.raises(ConfigError, match=r"training\.time_budget_minutes"):
        load_train_config(write_config(tmp_path / "bad.yaml", config))
