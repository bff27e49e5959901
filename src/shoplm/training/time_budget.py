"""Train for a fixed wall-clock time instead of a fixed number of steps.

With ``training.time_budget_minutes`` the learning-rate schedule runs on elapsed time: warm-up
and decay are fractions of the budget, not of the steps, and training stops when the budget is
spent (after Geiping and Goldstein, 2023, "Cramming"). A fast machine takes more steps in the
same minutes, a slow one fewer, and both finish their schedule. ``epochs`` / ``max_steps`` still
cap the run, and the schedule's progress is whichever share is larger, of the budget spent or of
the cap's steps taken: a machine fast enough to reach the cap first still ends its schedule at
the cap, as a run without a budget would. The time counts the training loop with its evaluations
and checkpoints, not the data preparation before it.

Every process of a distributed run uses rank 0's clock, so all of them agree on the learning
rate and on the step at which they stop. A checkpoint records the time spent so far, and a run
resumed from it spends only what is left.
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.optim.lr_scheduler import LambdaLR, LRScheduler
from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from shoplm.training.layer_decay import LayerDecayTrainer

logger = logging.getLogger(__name__)

CHECKPOINT_FILE = "time_budget.json"


def schedule_factor(kind: str, progress: float, warmup: float) -> float:
    """The learning-rate multiplier at ``progress`` (0..1 of the budget), shaped like the
    transformers schedule of the same name ('constant' has no warm-up there either)."""
    if kind != "constant" and progress < warmup:
        return progress / warmup
    if kind in ("constant", "constant_with_warmup"):
        return 1.0
    rest = min(1.0, (progress - warmup) / (1.0 - warmup))
    if kind == "linear":
        return 1.0 - rest
    if kind == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * rest))
    raise ValueError(f"no time-based form of the learning-rate schedule {kind!r}")


class TimeBudget(TrainerCallback):
    """The clock: measures the training loop, shares rank 0's reading, stops the run when spent."""

    def __init__(self, minutes: float, *, schedule: str, warmup_ratio: float) -> None:
        self.seconds = minutes * 60.0
        self.schedule = schedule
        self.warmup_ratio = warmup_ratio
        self.spent_before = 0.0  # restored from the checkpoint a run resumes from
        self.time_share = 0.0  # the share of the budget spent at the start of the current step
        self.progress = 0.0  # the schedule's: the larger of time_share and the share of the cap's steps
        self.spent = False  # whether the budget, rather than epochs or max_steps, ended the run
        self._started: float | None = None

    def restore(self, checkpoint: Path) -> None:
        """Take up the time a resumed checkpoint had already spent (none if it kept no record)."""
        record = checkpoint / CHECKPOINT_FILE
        if record.is_file():
            self.spent_before = float(json.loads(record.read_text(encoding="utf-8"))["elapsed_seconds"])
            self.time_share = self.progress = min(1.0, self.spent_before / self.seconds)

    def elapsed(self) -> float:
        running = 0.0 if self._started is None else time.monotonic() - self._started
        return self.spent_before + running

    def learning_rate_factor(self) -> float:
        return schedule_factor(self.schedule, self.progress, self.warmup_ratio)

    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        self._started = time.monotonic()
        if state.is_world_process_zero:
            left = max(0.0, self.seconds - self.spent_before) / 60
            logger.info(
                "time budget: training stops after %.1f more minutes (at most %d steps)", left, state.max_steps
            )

    def on_step_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        self.time_share = min(1.0, _rank_zero_value(self.elapsed(), args.device) / self.seconds)
        # The factor is read at this step's scheduler step and used for the next one, as transformers'
        # step schedules are: hence the step after this one.
        steps_share = (state.global_step + 1) / state.max_steps if state.max_steps > 0 else 0.0
        self.progress = max(self.time_share, min(1.0, steps_share))

    def on_step_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        if self.time_share >= 1.0 and not control.should_training_stop:
            control.should_training_stop = True
            self.spent = True
            # The step that spent the budget is saved and evaluated like the last step of a run; with
            # the epoch strategies the end of the (cut) epoch does both.
            control.should_save = control.should_save or args.save_strategy == "steps"
            control.should_evaluate = control.should_evaluate or args.eval_strategy == "steps"
            if state.is_world_process_zero:
                logger.info("time budget spent after %d steps (epoch %.2f)", state.global_step, state.epoch or 0)

    def on_save(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        checkpoint = Path(str(args.output_dir)) / f"checkpoint-{state.global_step}"
        if state.is_world_process_zero and checkpoint.is_dir():
            record = {"elapsed_seconds": self.elapsed(), "budget_seconds": self.seconds}
            (checkpoint / CHECKPOINT_FILE).write_text(json.dumps(record) + "\n", encoding="utf-8")


def _rank_zero_value(value: float, device: torch.device) -> float:
    """``value`` as process 0 has it (each process's own when training alone)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return value
    shared = torch.tensor([value], dtype=torch.float64, device=device)
    dist.broadcast(shared, src=0)
    return float(shared.item())


class TimeBudgetTrainer(LayerDecayTrainer):
    """The Trainer of shoplm runs: with a TimeBudget, its learning rate and its end follow the clock."""

    def __init__(self, *args: Any, time_budget: TimeBudget | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.time_budget = time_budget
        if time_budget is not None:
            self.add_callback(time_budget)

    def create_scheduler(
        self, num_training_steps: int, optimizer: torch.optim.Optimizer | None = None
    ) -> LRScheduler:
        budget = self.time_budget
        if self.lr_scheduler is None and budget is not None:
            target = optimizer or self.optimizer
            assert target is not None  # the Trainer creates its optimizer first
            # A plain function, not a bound method: LambdaLR's state_dict then stores nothing of it.
            self.lr_scheduler = LambdaLR(target, lambda _step: budget.learning_rate_factor())
            self._created_lr_scheduler = True
        return super().create_scheduler(num_training_steps, optimizer)
