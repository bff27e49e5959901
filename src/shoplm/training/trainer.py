"""Run one training config on `transformers.Trainer`: one process, or one of several under torchrun.

The Trainer does the loop, gradient accumulation, checkpointing and exact resume (optimizer,
scheduler, RNG, data position), DDP/FSDP, mixed precision, TensorBoard logging and progress
bars; this module only assembles its parts from the config and writes the run directory.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from datasets import Dataset
from transformers import (
    EarlyStoppingCallback,
    EvalPrediction,
    PreTrainedTokenizerBase,
    Trainer,
    TrainingArguments,
    set_seed,
)
from transformers.integrations import TensorBoardCallback

from shoplm.config import ConfigError
from shoplm.hardware import cpu_has_native_bf16
from shoplm.textproc import PreprocessConfig, TextPipeline, TokenizerMismatchError
from shoplm.training import run_dir as runs
from shoplm.training.collate import collator_for
from shoplm.training.config import CLASSIFY_SCORES, TrainConfig
from shoplm.training.data import DataFiles, build_split, label_names_for, resolve_files, texts_for_tokenizer
from shoplm.training.models import (
    apply_lora,
    build_model,
    load_pretrained_tokenizer,
    pretrained_directory,
)
from shoplm.training.time_budget import TimeBudget, TimeBudgetTrainer
from shoplm.training.tokenizer_training import train_tokenizer

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainResult:
    """What a finished run produced."""

    run_dir: Path
    final_dir: Path
    metrics: dict[str, Any]


def world_size() -> int:
    """Processes in this run (torchrun sets WORLD_SIZE)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def resolve_precision(requested: str, on_gpu: bool) -> str:
    """``mixed_precision`` as the Trainer gets it: 'auto' becomes bf16 where the device computes it
    natively (a GPU with bf16, else fp16 there; a CPU with AMX or AVX512-BF16), else 'no'."""
    if requested == "auto":
        if on_gpu:
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return "bf16" if cpu_has_native_bf16() else "no"
    if requested == "bf16" and not on_gpu and not cpu_has_native_bf16():
        logger.warning(
            "mixed_precision: bf16 on a CPU without AMX or AVX512-BF16: PyTorch emulates bfloat16 here, "
            "which trains many times slower than float32; 'auto' picks float32 on this CPU"
        )
    return requested


def training_arguments(config: TrainConfig) -> TrainingArguments:
    """The config's training section as TrainingArguments."""
    spec = config.training
    on_gpu = torch.cuda.is_available()
    precision = resolve_precision(spec.mixed_precision, on_gpu)
    if config.distributed.fsdp and not on_gpu:
        raise ConfigError("distributed.fsdp shards a model across CUDA devices; on CPU, train with plain DDP")
    backend = config.distributed.backend
    if backend == "auto":
        backend = "nccl" if on_gpu else "gloo"
    return TrainingArguments(
        output_dir=str(config.output_dir),
        seed=config.seed,
        num_train_epochs=spec.epochs,
        max_steps=spec.max_steps,
        per_device_train_batch_size=spec.batch_size,
        per_device_eval_batch_size=spec.eval_batch_size,
        gradient_accumulation_steps=spec.gradient_accumulation_steps,
        learning_rate=spec.learning_rate,
        weight_decay=spec.weight_decay,
        warmup_steps=spec.warmup_ratio,  # a float below 1 is a fraction of the total steps
        lr_scheduler_type=spec.lr_scheduler,
        max_grad_norm=spec.max_grad_norm,
        label_smoothing_factor=spec.label_smoothing,
        eval_strategy=spec.eval_strategy,
        eval_steps=spec.eval_steps,
        save_strategy=spec.save_strategy,
        save_steps=spec.save_steps or 500,
        save_total_limit=spec.save_total_limit,
        logging_steps=spec.logging_steps,
        load_best_model_at_end=spec.early_stopping_patience is not None,
        metric_for_best_model=spec.metric_for_best_model,
        activation_checkpointing=spec.gradient_checkpointing,
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        use_cpu=not on_gpu,
        ddp_backend=backend if world_size() > 1 else None,
        fsdp=True if config.distributed.fsdp else None,  # type: ignore[arg-type]
        fsdp_config={"reshard_after_forward": True} if config.distributed.fsdp else None,
        train_sampling_strategy="group_by_length" if spec.group_by_length else "random",
        dataloader_num_workers=spec.dataloader_workers,
        dataloader_pin_memory=on_gpu,
        report_to="none",  # TensorBoard is added as a callback writing into <run>/tensorboard
        remove_unused_columns=False,
        # Token-averaged losses (LMs) divide by the tokens of the global batch; a classifier's
        # loss is a mean over its own rows, and scaling it by the process count would double
        # its gradients under two processes.
        average_tokens_across_devices=config.task != "classify",
    )


def make_tokenizer(
    config: TrainConfig, args: TrainingArguments, preprocessing: PreprocessConfig, files: DataFiles
) -> PreTrainedTokenizerBase:
    """The pretrained model's tokenizer, or one trained on the training text (once, by rank 0)."""
    saved = config.output_dir / runs.TOKENIZER_DIR
    if config.model.from_pretrained is not None:
        return load_pretrained_tokenizer(pretrained_directory(config.model.from_pretrained))
    assert config.tokenizer is not None
    with args.main_process_first(desc="training the tokenizer"):
        if not (saved / "tokenizer.json").is_file():
            cleaner = TextPipeline(preprocessing)
            texts = texts_for_tokenizer(files, config.data, cleaner, config.tokenizer.max_texts)
            tokenizer = train_tokenizer(config.tokenizer, texts, causal=config.task in ("clm", "chat"))
            tokenizer.model_max_length = config.model.max_positions
            tokenizer.save_pretrained(saved)
    return load_pretrained_tokenizer(saved)


def run_preprocessing(config: TrainConfig) -> PreprocessConfig:
    """The run's data interface: the config's, else the one saved with the pretrained model."""
    if "preprocessing" not in config.model_fields_set and config.model.from_pretrained is not None:
        directory = pretrained_directory(config.model.from_pretrained)
        if (directory / "preprocessing.json").is_file():
            # Fine-tuning keeps the pretrained model's preprocessing unless told otherwise.
            return PreprocessConfig.load(directory)
    return config.preprocessing


def _check_watched_metric(config: TrainConfig, eval_set: Dataset | None) -> None:
    """ROC-AUC needs both classes in validation; without, transformers stops at the first evaluation."""
    watched = config.training.metric_for_best_model.removeprefix("eval_")
    if watched == "roc_auc" and eval_set is not None and len(set(eval_set["labels"])) < 2:
        raise ConfigError(
            "training.metric_for_best_model is roc_auc, but the validation data holds one class, so it has "
            "no ROC-AUC; use accuracy or loss, or validate on data with every class"
        )


def classification_scores(prediction: EvalPrediction) -> dict[str, float]:
    """Accuracy, F1 and ROC-AUC of an evaluation pass, for logs and early stopping."""
    from shoplm.evaluation.metrics import classification_metrics

    logits = prediction.predictions[0] if isinstance(prediction.predictions, tuple) else prediction.predictions
    logits = np.asarray(logits, dtype=np.float64)
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    probabilities = shifted / shifted.sum(axis=1, keepdims=True)
    metrics = classification_metrics(np.asarray(prediction.label_ids).tolist(), probabilities)
    return {key: float(metrics[key]) for key in CLASSIFY_SCORES if metrics.get(key) is not None}


def run_training(
    config: TrainConfig, *, resume: bool | Path = False, overwrite: bool = False, command: list[str] | None = None
) -> TrainResult:
    """Train ``config`` and save the final model under ``<output_dir>/final``.

    ``resume`` is True (the newest checkpoint) or a checkpoint directory. Raises
    RunDirectoryError when the run directory holds another run and neither flag says what to do.
    """
    if config.training.torch_threads:
        torch.set_num_threads(config.training.torch_threads)
    run_dir = config.output_dir
    args = training_arguments(config)
    if args.process_index == 0:
        runs.prepare_run_dir(run_dir, resume=resume, overwrite=overwrite, training=config.training)
    set_seed(config.seed)
    with args.main_process_first(desc="preparing data"):
        files = resolve_files(config.data, config.training.eval_strategy)
    if config.task == "classify":
        names = label_names_for(config, files)
        config = config.model_copy(update={"model": config.model.model_copy(update={"label_names": names})})
    preprocessing = run_preprocessing(config)
    tokenizer = make_tokenizer(config, args, preprocessing, files)
    if config.model.ngram_bag is not None:
        # The n-gram bag reads texts longer than the backbone's positions (which then sees their
        # head and tail), so the saved tokenizer must allow the preprocessing's length.
        tokenizer.model_max_length = max(tokenizer.model_max_length, preprocessing.padding.max_length)
    try:
        pipeline = TextPipeline(preprocessing, tokenizer)
    except TokenizerMismatchError as error:
        raise ConfigError(f"preprocessing.padding: {error}") from None
    with args.main_process_first(desc="tokenizing"):
        train_set = build_split(config, files.train, pipeline, train=True, extra=files.extra_train)
        eval_set = build_split(config, files.validation, pipeline, train=False) if files.validation else None
    _check_watched_metric(config, eval_set)
    if args.process_index == 0:
        runs.write_start(run_dir, config, files.content_hash(), args, command or [])
    set_seed(config.seed)  # the model's initial weights do not depend on how much data was read
    model = build_model(config, tokenizer)
    if config.lora is not None:
        model = apply_lora(model, config)
    if args.fsdp_plugin_args is not None and (units := fsdp_unit_classes(model)):
        args.fsdp_plugin_args["transformer_cls_names_to_wrap"] = ",".join(units)
    checkpoint = (runs.checkpoints(run_dir)[-1] if resume is True else Path(resume)) if resume else None
    if checkpoint is not None:
        runs.check_checkpoint_fits(checkpoint, model)
    time_budget = None
    if (minutes := config.training.time_budget_minutes) is not None:
        spec = config.training
        time_budget = TimeBudget(minutes, schedule=spec.lr_scheduler, warmup_ratio=spec.warmup_ratio)
        if checkpoint is not None:
            time_budget.restore(checkpoint)
    trainer = TimeBudgetTrainer(
        model=model,
        args=args,
        train_dataset=train_set,
        eval_dataset=eval_set if config.training.eval_strategy != "no" else None,
        data_collator=collator_for(config.task, pipeline, config.training.whole_word_masking),
        processing_class=tokenizer,
        compute_metrics=classification_scores if config.task == "classify" else None,
        callbacks=_callbacks(config, run_dir),
        layer_lr_decay=config.training.layer_lr_decay,
        time_budget=time_budget,
    )
    outcome = trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    metrics = dict(outcome.metrics, global_step=outcome.global_step)
    if time_budget is not None:
        metrics["time_budget_spent"] = time_budget.spent
    if eval_set is not None and config.training.eval_strategy != "no":
        metrics.update(trainer.evaluate())
    final_dir = run_dir / runs.FINAL_MODEL_DIR
    save_final(trainer, config, pipeline, final_dir)
    if trainer.is_world_process_zero():
        runs.write_finish(run_dir, metrics, type(trainer.model_wrapped).__name__)
    return TrainResult(run_dir, final_dir, metrics)


def fsdp_unit_classes(model: torch.nn.Module) -> list[str]:
    """The module classes FSDP shards as units of their own: the model's transformer layers.

    These are the model's ``_no_split_modules`` minus its embeddings block. accelerate gives the
    input embedding matrix a unit of its own anyway; wrapping the block that holds it as well
    shards that matrix twice, which torch 2.11 refuses (``DeviceMesh._concatenate``).
    """
    declared = {name for module in model.modules() for name in getattr(module, "_no_split_modules", None) or []}
    present = {type(module).__name__ for module in model.modules()}
    return sorted(name for name in declared & present if not name.endswith("Embeddings"))


def _callbacks(config: TrainConfig, run_dir: Path) -> list[Any]:
    tensorboard = TensorBoardCallback()
    tensorboard.logging_dir = str(run_dir / runs.TENSORBOARD_DIR)
    callbacks: list[Any] = [tensorboard]
    if config.training.early_stopping_patience is not None:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=config.training.early_stopping_patience))
    return callbacks


def save_final(trainer: Trainer, config: TrainConfig, pipeline: TextPipeline, final_dir: Path) -> None:
    """The model the server loads (or a later run starts from): weights (LoRA merged in; of an rtd
    run the discriminator), tokenizer and preprocessing.json.

    Called on every process: under FSDP, gathering the full weights takes all of them.
    """
    if config.lora is not None and config.lora.merge_on_save:
        if trainer.is_world_process_zero():
            merged = trainer.model.merge_and_unload()  # type: ignore[operator,union-attr]
            merged.save_pretrained(final_dir)
    elif config.task == "rtd":
        # The generator only trained the discriminator; the encoder to fine-tune is the discriminator.
        if trainer.is_world_process_zero():
            trainer.accelerator.unwrap_model(trainer.model).discriminator.save_pretrained(final_dir)
    else:
        trainer.save_model(str(final_dir))
    if not trainer.is_world_process_zero():
        return
    assert pipeline.tokenizer is not None
    pipeline.tokenizer.save_pretrained(final_dir)
    preprocessing = pipeline.config
    user_dict = preprocessing.segment.user_dict
    if user_dict is not None and user_dict.is_file():
        # The jieba dictionary travels with the model; preprocessing.json names it relatively.
        (final_dir / user_dict.name).write_bytes(user_dict.read_bytes())
        segment = preprocessing.segment.model_copy(update={"user_dict": Path(user_dict.name)})
        preprocessing = preprocessing.model_copy(update={"segment": segment})
    preprocessing.save(final_dir)
