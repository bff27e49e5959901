"""The training run config (``configs/train/*.yaml``), validated by pydantic.

One YAML per run. Unknown fields are errors, so a typo fails before any work starts, with
the dotted path of the bad field in the message.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, model_validator

from shoplm.config import ConfigError, StrictModel, format_validation_error, read_yaml_mapping
from shoplm.textproc import PaddingConfig, PreprocessConfig

TrainTask = Literal["clm", "mlm", "rtd", "classify", "chat"]
Architecture = Literal["gpt2", "llama", "roberta", "roberta-prelayernorm", "modernbert", "bert"]

# Which architectures each task can build from scratch.
TASK_ARCHITECTURES: dict[str, tuple[str, ...]] = {
    "clm": ("gpt2", "llama"),
    "chat": ("gpt2", "llama"),
    "mlm": ("roberta", "roberta-prelayernorm", "modernbert", "bert"),
    "rtd": ("roberta", "roberta-prelayernorm", "bert"),
    "classify": ("roberta", "roberta-prelayernorm", "modernbert", "bert", "gpt2", "llama"),
}


class DataConfig(StrictModel):
    """Where the examples come from: a prepared directory or explicit JSONL/text files."""

    dir: Path | None = Field(
        None, description="A directory written by `shoplm data prepare` (train/validation/test.jsonl)."
    )
    corpus: Literal["reviews", "news", "catalog"] | None = Field(
        None, description="A bundled corpus, prepared on first use into the cache (canonical split)."
    )
    train: list[Path] = Field(default_factory=list, description="Training files (.jsonl or .txt).")
    validation: list[Path] = Field(default_factory=list, description="Validation files (.jsonl or .txt).")
    extra_train: list[Path] = Field(
        default_factory=list, description="More training text (e.g. news for MLM), appended to train."
    )
    extra_corpora: list[Literal["reviews", "news", "catalog"]] = Field(
        default_factory=list, description="Bundled corpora whose train split is appended to train (text only)."
    )
    text_field: str = "text"
    label_field: str = "label"
    messages_field: str = Field("messages", description="chat: the list of {role, content} messages.")
    max_train_samples: int | None = Field(None, ge=1, description="Use only the first N training rows.")
    max_eval_samples: int | None = Field(None, ge=1, description="Use only the first N validation rows.")
    pack: bool = Field(
        False, description="clm: concatenate texts and cut them into full blocks instead of one text a row."
    )

    @model_validator(mode="after")
    def _one_source(self) -> DataConfig:
        sources = [self.dir is not None, self.corpus is not None, bool(self.train)]
        if sum(sources) != 1:
            raise ValueError("give exactly one of data.dir, data.corpus or data.train")
        return self


class NgramBagSpec(StrictModel):
    """classify: a hashed n-gram bag whose per-label weights are added to the model's logits."""

    orders: list[int] = Field(default_factory=lambda: [1, 2, 3], description="n-gram lengths, in tokens.")
    buckets: int = Field(1 << 20, ge=16, description="Size of the hashed weight table.")
    lr_scale: float = Field(
        100.0, gt=0, description="The bag learns this many times faster than the rest of the model."
    )
    presence: bool = Field(
        False, description="Count each distinct n-gram of a text once, not once per occurrence."
    )

    @model_validator(mode="after")
    def _orders(self) -> NgramBagSpec:
        if not self.orders or any(order < 1 for order in self.orders) or len(set(self.orders)) != len(self.orders):
            raise ValueError("orders must be distinct lengths of at least 1")
        return self


class ModelSpec(StrictModel):
    """The network: a pretrained checkpoint to start from, or an architecture built from scratch."""

    from_pretrained: str | None = Field(
        None,
        description="A local checkpoint directory, a run directory (its final model), or a packaged "
        "model ('package:smollm2').",
    )
    architecture: Architecture | None = Field(None, description="Built from scratch when from_pretrained is unset.")
    hidden_size: int = Field(256, ge=8)
    num_layers: int = Field(4, ge=1)
    num_heads: int = Field(4, ge=1)
    num_kv_heads: int | None = Field(None, ge=1, description="llama: key/value heads (grouped-query attention).")
    intermediate_size: int | None = Field(None, ge=8, description="Feed-forward width; default 4 x hidden_size.")
    max_positions: int = Field(128, ge=8, description="Longest sequence the model can take.")
    dropout: float = Field(
        0.1, ge=0, lt=1, description="Dropout rate; with from_pretrained, given only to replace the checkpoint's."
    )
    label_names: list[str] = Field(
        default_factory=lambda: ["negative", "positive"], description="classify: one name per label id."
    )
    ngram_bag: NgramBagSpec | None = Field(
        None, description="classify: add a hashed n-gram bag to the logits (wide and deep)."
    )

    @model_validator(mode="after")
    def _one_source(self) -> ModelSpec:
        if (self.from_pretrained is None) == (self.architecture is None):
            raise ValueError("give exactly one of model.from_pretrained or model.architecture")
        if self.hidden_size % self.num_heads:
            raise ValueError(f"hidden_size ({self.hidden_size}) must be a multiple of num_heads ({self.num_heads})")
        if len(set(self.label_names)) != len(self.label_names) or len(self.label_names) < 2:
            raise ValueError("label_names must hold at least two distinct names")
        return self


class TokenizerSpec(StrictModel):
    """A tokenizer trained on the training text, for models built from scratch."""

    kind: Literal["wordpiece", "bpe"] = Field(
        "wordpiece", description="wordpiece: one token per Chinese character; bpe: byte-level BPE."
    )
    vocab_size: int = Field(8000, ge=100)
    min_frequency: int = Field(2, ge=1)
    split_chinese_chars: bool = Field(
        True, description="wordpiece: each Chinese character a word of its own; off: learn words from jieba's spaces."
    )
    max_texts: int = Field(200_000, ge=100, description="Most training texts read to learn the vocabulary.")
    added_tokens_file: Path | None = Field(
        None, description="added_tokens.json or a lexicon (one term a line) whose terms become single tokens."
    )


class ReplacedTokenSpec(StrictModel):
    """rtd: the generator that fills in masked tokens for the discriminator (the model kept) to detect."""

    generator_layers: int = Field(
        1, ge=1, description="The generator's layers; its width and embeddings are the discriminator's."
    )
    generator_intermediate_size: int | None = Field(
        None, ge=8, description="The generator's feed-forward width; default: the discriminator's."
    )
    discriminator_weight: float = Field(
        50.0, gt=0, description="Loss = generator masked-LM loss + this x replaced-token detection loss."
    )


class LoraSpec(StrictModel):
    """Low-rank adapters (peft) instead of training every weight."""

    r: int = Field(8, ge=1)
    alpha: int = Field(16, ge=1)
    dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: list[str] | None = Field(None, description="Default: peft's choice for the architecture.")
    merge_on_save: bool = Field(True, description="Fold the adapters into the weights in the final model.")


class TrainingSpec(StrictModel):
    """The optimisation; each field maps onto a transformers.TrainingArguments field."""

    epochs: float = Field(3.0, gt=0)
    max_steps: int = Field(-1, ge=-1, description="When > 0, overrides epochs.")
    time_budget_minutes: float | None = Field(
        None,
        gt=0,
        description="Train for this many minutes of the training loop (evaluations included): the "
        "learning-rate schedule runs on elapsed time and the run stops when it is spent; epochs or "
        "max_steps cap it. Not reproducible step for step: a faster machine takes more steps.",
    )
    batch_size: int = Field(32, ge=1, description="Per process; the global batch is this x processes x accumulation.")
    eval_batch_size: int = Field(64, ge=1)
    gradient_accumulation_steps: int = Field(1, ge=1)
    learning_rate: float = Field(5e-4, gt=0)
    weight_decay: float = Field(0.01, ge=0)
    warmup_ratio: float = Field(0.06, ge=0, lt=1, description="Fraction of the steps spent warming up.")
    lr_scheduler: Literal["linear", "cosine", "constant", "constant_with_warmup"] = "linear"
    max_grad_norm: float = Field(1.0, gt=0)
    layer_lr_decay: float = Field(
        1.0,
        gt=0,
        le=1,
        description="Layer-wise learning-rate decay: layer i of L learns at learning_rate x this^(L+1-i) "
        "(embeddings i = 0; the head and an n-gram bag at the full rate). 1 turns it off.",
    )
    eval_strategy: Literal["steps", "epoch", "no"] = "epoch"
    eval_steps: int | None = Field(None, ge=1)
    save_strategy: Literal["steps", "epoch", "no"] = "epoch"
    save_steps: int | None = Field(None, ge=1)
    save_total_limit: int | None = Field(2, ge=1)
    logging_steps: int = Field(20, ge=1)
    early_stopping_patience: int | None = Field(
        None, ge=1, description="Stop after this many evaluations without improvement (keeps the best model)."
    )
    metric_for_best_model: str = Field("eval_loss", description="What early stopping and best-model pick watch.")
    gradient_checkpointing: bool = False
    mixed_precision: Literal["auto", "no", "bf16", "fp16"] = Field(
        "auto",
        description="auto: bf16 where the device computes it natively (a GPU with bf16, else fp16 there; "
        "a CPU with AMX or AVX512-BF16), else full precision.",
    )
    mlm_probability: float = Field(0.15, gt=0, lt=1, description="mlm/rtd: the share of tokens masked.")
    whole_word_masking: bool = Field(
        False,
        description="mlm/rtd: mask whole words (jieba's for Chinese characters, WordPiece's elsewhere) "
        "instead of single tokens; needs a WordPiece tokenizer.",
    )
    label_smoothing: float = Field(
        0.0,
        ge=0,
        lt=1,
        description="classify: the share of each label's target spread evenly over all labels "
        "(softer targets for noisy labels).",
    )
    group_by_length: bool = Field(
        False, description="Batch texts of similar length together: far less padding on short, uneven texts."
    )
    dataloader_workers: int = Field(0, ge=0)
    torch_threads: int | None = Field(None, ge=1, description="Intra-op CPU threads per process; default: torch's.")

    @model_validator(mode="after")
    def _steps_given(self) -> TrainingSpec:
        for strategy, steps, name in (
            (self.eval_strategy, self.eval_steps, "eval_steps"),
            (self.save_strategy, self.save_steps, "save_steps"),
        ):
            if strategy == "steps" and steps is None:
                raise ValueError(f"{name} is required when its strategy is 'steps'")
        if self.early_stopping_patience is not None and "no" in (self.eval_strategy, self.save_strategy):
            raise ValueError("early_stopping_patience needs eval_strategy and save_strategy other than 'no'")
        return self


class DistributedSpec(StrictModel):
    """Several processes: DDP by default, FSDP for models too big for one device."""

    backend: Literal["auto", "gloo", "nccl"] = Field("auto", description="auto: nccl on GPU, gloo on CPU.")
    fsdp: bool = Field(
        False, description="CUDA only: shard parameters, gradients and optimizer state across the processes."
    )


class TrainConfig(StrictModel):
    """One training run."""

    task: TrainTask
    output_dir: Path = Field(description="The run directory: config, logs, checkpoints, final model.")
    seed: int = Field(42, ge=0, lt=2**32, description="Seeds weights, data order and dropout (numpy takes 32 bits).")
    data: DataConfig
    model: ModelSpec
    tokenizer: TokenizerSpec | None = Field(
        None, description="Train a tokenizer (models from scratch); default: the pretrained model's."
    )
    preprocessing: PreprocessConfig = Field(
        default_factory=PreprocessConfig, description="The data interface, saved with the model."
    )
    training: TrainingSpec = Field(default_factory=TrainingSpec)
    lora: LoraSpec | None = None
    rtd: ReplacedTokenSpec | None = Field(
        None, description="rtd: replaced-token detection (ELECTRA) settings; default: ReplacedTokenSpec()."
    )
    distributed: DistributedSpec = Field(default_factory=DistributedSpec)

    @model_validator(mode="after")
    def _consistent(self) -> TrainConfig:
        spec = self.model
        if spec.architecture is not None:
            allowed = TASK_ARCHITECTURES[self.task]
            if spec.architecture not in allowed:
                raise ValueError(
                    f"model.architecture {spec.architecture!r} cannot do task {self.task!r}; use one of {allowed}"
                )
            if self.tokenizer is None:
                raise ValueError("a model built from scratch needs a tokenizer section (what to train)")
        task_only_settings: tuple[tuple[bool, str, tuple[str, ...]], ...] = (
            (spec.ngram_bag is not None, "model.ngram_bag", ("classify",)),
            (self.training.whole_word_masking, "training.whole_word_masking", ("mlm", "rtd")),
            (self.data.pack, "data.pack", ("clm",)),
            (bool(self.training.label_smoothing), "training.label_smoothing", ("classify",)),
            (self.rtd is not None, "the rtd section", ("rtd",)),
        )
        for is_set, name, tasks in task_only_settings:
            if is_set and self.task not in tasks:
                named = " and ".join(repr(task) for task in tasks)
                raise ValueError(f"{name} is for task{'s' if len(tasks) > 1 else ''} {named}, not {self.task!r}")
        _check_best_model_metric(self.task, self.training.metric_for_best_model)
        if self.training.whole_word_masking and self.tokenizer is not None and self.tokenizer.kind != "wordpiece":
            raise ValueError("training.whole_word_masking needs tokenizer.kind 'wordpiece'")
        if self.task == "rtd" and spec.architecture is None:
            raise ValueError("task 'rtd' pretrains from scratch: give model.architecture, not model.from_pretrained")
        if self.task == "rtd" and self.distributed.fsdp:
            raise ValueError("task 'rtd' trains small encoders with plain DDP; distributed.fsdp is not offered for it")
        if spec.architecture is None and self.tokenizer is not None:
            raise ValueError(
                "the tokenizer section is for models built from scratch; model.from_pretrained brings "
                "its own tokenizer"
            )
        padding = self.preprocessing.padding
        if spec.architecture is not None and padding.max_length > spec.max_positions:
            if "max_length" in padding.model_fields_set:
                raise ValueError(
                    f"preprocessing.padding.max_length ({padding.max_length}) exceeds "
                    f"model.max_positions ({spec.max_positions})"
                )
            # The default of 512 suits pretrained models; one built here holds max_positions tokens.
            fitted = PaddingConfig.model_validate(
                {**padding.model_dump(exclude_unset=True), "max_length": spec.max_positions}
            )
            self.preprocessing = self.preprocessing.model_copy(update={"padding": fitted})
        return self


# The scores a classifier's evaluation pass reports beside its loss.
CLASSIFY_SCORES = ("accuracy", "f1", "roc_auc")
# What an evaluation pass reports, per task: early stopping and the best-model pick watch one of them.
EVAL_METRICS: dict[str, tuple[str, ...]] = {"classify": ("loss", *CLASSIFY_SCORES)}


def _check_best_model_metric(task: str, metric: str) -> None:
    known = EVAL_METRICS.get(task, ("loss",))
    if metric.removeprefix("eval_") not in known:
        raise ValueError(
            f"training.metric_for_best_model {metric!r} is not reported by task {task!r}; use one of {', '.join(known)}"
        )


def load_train_config(path: Path, overrides: dict[str, object] | None = None) -> TrainConfig:
    """Read and validate a training config; relative paths in it are taken from the current directory.

    ``overrides`` replaces top-level keys (e.g. ``output_dir`` from the command line). Raises
    ConfigError naming the file and each bad field.
    """
    raw = read_yaml_mapping(path, "training config")
    raw.update(overrides or {})
    try:
        config = TrainConfig.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(format_validation_error(error, str(path), TrainConfig)) from None
    return resolve_paths(config, Path.cwd())


def resolve_paths(config: TrainConfig, base: Path) -> TrainConfig:
    """Make the config's relative paths absolute against ``base``, so child processes agree on them."""

    def fix(path: Path) -> Path:
        return path if path.is_absolute() else (base / path)

    data = config.data.model_copy(
        update={
            "dir": fix(config.data.dir) if config.data.dir else None,
            "train": [fix(p) for p in config.data.train],
            "validation": [fix(p) for p in config.data.validation],
            "extra_train": [fix(p) for p in config.data.extra_train],
        }
    )
    model = config.model
    if model.from_pretrained and not model.from_pretrained.startswith("package:"):
        model = model.model_copy(update={"from_pretrained": str(fix(Path(model.from_pretrained)))})
    tokenizer = config.tokenizer
    if tokenizer is not None and tokenizer.added_tokens_file is not None:
        tokenizer = tokenizer.model_copy(update={"added_tokens_file": fix(tokenizer.added_tokens_file)})
    return config.model_copy(
        update={"data": data, "model": model, "tokenizer": tokenizer, "output_dir": fix(config.output_dir)}
    )
