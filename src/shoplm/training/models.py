"""Build the network a run trains: from scratch (GPT-2, Llama, RoBERTa, ModernBERT, BERT) or from a checkpoint."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, cast

import torch
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForMaskedLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    BertConfig,
    GPT2Config,
    LlamaConfig,
    ModernBertConfig,
    PretrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    RobertaConfig,
    RobertaPreLayerNormConfig,
)

from shoplm.modeling import NgramBagForSequenceClassification
from shoplm.modeling.masked_lm import TokenMasking, with_masked_positions_loss
from shoplm.modeling.replaced_token_detection import replaced_token_detection
from shoplm.training.config import ModelSpec, ReplacedTokenSpec, TrainConfig
from shoplm.training.run_dir import FINAL_MODEL_DIR

logger = logging.getLogger(__name__)

AUTO_CLASSES: dict[str, Any] = {
    "clm": AutoModelForCausalLM,
    "chat": AutoModelForCausalLM,
    "mlm": AutoModelForMaskedLM,
    "classify": AutoModelForSequenceClassification,
}


# Each architecture's dropout rates, by the model_type of its config.
DROPOUT_FIELDS: dict[str, tuple[str, ...]] = {
    "gpt2": ("resid_pdrop", "embd_pdrop", "attn_pdrop"),
    "llama": ("attention_dropout",),
    "modernbert": ("embedding_dropout", "mlp_dropout", "attention_dropout"),
    "roberta": ("hidden_dropout_prob", "attention_probs_dropout_prob"),
    "roberta-prelayernorm": ("hidden_dropout_prob", "attention_probs_dropout_prob"),
    "bert": ("hidden_dropout_prob", "attention_probs_dropout_prob"),
}


class ModelSpecError(ValueError):
    """The configured starting model cannot be found or built; the message names it."""


def pretrained_directory(reference: str) -> Path:
    """The checkpoint directory behind ``from_pretrained``: a path, a run directory, or a packaged model."""
    if reference.startswith("package:"):
        from shoplm.serving.loading import (
            PACKAGED_MODELS,
            ModelSourceError,
            ResolvedSource,
            package_directory,
            plain_checkpoint,
        )

        name = reference.removeprefix("package:")
        if name not in PACKAGED_MODELS:
            raise ModelSpecError(f"unknown packaged model {name!r}; known: {', '.join(sorted(PACKAGED_MODELS))}")
        package, gguf_file = PACKAGED_MODELS[name]
        try:
            return plain_checkpoint(ResolvedSource(package_directory(package), gguf_file, "1"))
        except ModelSourceError as error:
            raise ModelSpecError(str(error)) from None
    path = Path(reference)
    if (path / FINAL_MODEL_DIR / "config.json").is_file():
        return path / FINAL_MODEL_DIR  # a run directory: start from its final model
    if not (path / "config.json").is_file():
        raise ModelSpecError(
            f"model.from_pretrained {reference!r} is not a checkpoint directory (no config.json), a run "
            "directory (no final/config.json) or 'package:NAME'; there is no model hub here"
        )
    return path


def load_pretrained_tokenizer(directory: Path) -> PreTrainedTokenizerBase:
    """The tokenizer saved with a checkpoint; causal models without a pad token pad with EOS."""
    tokenizer = AutoTokenizer.from_pretrained(directory)
    if tokenizer.pad_token is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def build_model(config: TrainConfig, tokenizer: PreTrainedTokenizerBase) -> PreTrainedModel:
    """The model for ``config.task``, its embeddings sized to the tokenizer."""
    spec = config.model
    labels = _label_kwargs(spec) if config.task == "classify" else {}
    model: PreTrainedModel
    if config.task == "mlm":
        model = _masked_lm(spec, tokenizer)
    elif config.task == "rtd":
        # The rtd section's fields are the pair's config fields, name for name.
        settings = (config.rtd or ReplacedTokenSpec()).model_dump()
        model = replaced_token_detection(_scratch_config(spec, tokenizer), **settings)
    elif spec.from_pretrained is not None:
        directory = pretrained_directory(spec.from_pretrained)
        model_config = _pretrained_config(spec, directory, **labels)
        model = AUTO_CLASSES[config.task].from_pretrained(directory, config=model_config)
    else:
        model = AUTO_CLASSES[config.task].from_config(_scratch_config(spec, tokenizer, **labels))
    if model.config.pad_token_id is None and tokenizer.pad_token_id is not None:
        # Sequence classification on GPT-2/Llama finds each row's last token through the pad id.
        model.config.pad_token_id = tokenizer.pad_token_id
    embeddings = cast(torch.nn.Embedding, model.get_input_embeddings())
    if len(tokenizer) > embeddings.num_embeddings:
        model.resize_token_embeddings(len(tokenizer))
    if config.task in ("mlm", "rtd"):
        if tokenizer.mask_token_id is None:
            raise ModelSpecError(f"{config.task} training needs a tokenizer with a mask token")
        # Set on the instance only: the saved checkpoint stays a stock model.
        model.masking = TokenMasking(  # type: ignore[assignment]  # an attribute of our mlm/rtd classes
            tokenizer.mask_token_id, len(tokenizer), config.training.mlm_probability)
    bag = spec.ngram_bag
    if config.task == "classify" and bag is not None and not isinstance(model, NgramBagForSequenceClassification):
        # Wrapped after any resize, so the backbone's own config keeps its vocabulary size.
        model = NgramBagForSequenceClassification.wrapping(
            model, ngram_orders=bag.orders, ngram_buckets=bag.buckets, ngram_lr_scale=bag.lr_scale,
            ngram_presence=bag.presence,
        )
    return model


def _masked_lm(spec: ModelSpec, tokenizer: PreTrainedTokenizerBase) -> PreTrainedModel:
    """The architecture's masked-LM model, computing its training loss at the masked positions only."""
    if spec.from_pretrained is not None:
        directory = pretrained_directory(spec.from_pretrained)
        model_config = _pretrained_config(spec, directory)
        return with_masked_positions_loss(model_config).from_pretrained(directory, config=model_config)
    model_config = _scratch_config(spec, tokenizer)
    return with_masked_positions_loss(model_config)._from_config(model_config)


def _pretrained_config(spec: ModelSpec, directory: Path, **labels: Any) -> PretrainedConfig:
    """The checkpoint's config with the run's labels, and its dropout rates replaced where the run
    gives ``model.dropout`` (fine-tuning often wants other rates than pretraining had)."""
    model_config = AutoConfig.from_pretrained(directory, **labels)
    if "dropout" in spec.model_fields_set:
        # A classifier with an n-gram bag keeps its backbone's settings in a nested config.
        backbone = getattr(model_config, "backbone", None)
        target = backbone if isinstance(backbone, PretrainedConfig) else model_config
        fields = DROPOUT_FIELDS.get(target.model_type)
        if fields is None:
            raise ModelSpecError(
                f"model.dropout cannot be set for a {target.model_type!r} checkpoint; it can for "
                + ", ".join(sorted(DROPOUT_FIELDS))
            )
        for name in fields:
            setattr(target, name, spec.dropout)
    return model_config


def _label_kwargs(spec: ModelSpec) -> dict[str, Any]:
    names = spec.label_names
    return {
        "num_labels": len(names),
        "id2label": dict(enumerate(names)),
        "label2id": {name: index for index, name in enumerate(names)},
    }


def _scratch_config(spec: ModelSpec, tokenizer: PreTrainedTokenizerBase, **extra: Any) -> PretrainedConfig:
    intermediate = spec.intermediate_size or 4 * spec.hidden_size
    ids = {
        "vocab_size": len(tokenizer),
        "pad_token_id": tokenizer.pad_token_id,
        "bos_token_id": tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.cls_token_id,
        "eos_token_id": tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.sep_token_id,
    }
    # The architecture names are the configs' model types.
    dropout: dict[str, Any] = dict.fromkeys(DROPOUT_FIELDS[spec.architecture or ""], spec.dropout)
    if spec.architecture == "gpt2":
        return GPT2Config(
            n_positions=spec.max_positions, n_embd=spec.hidden_size, n_layer=spec.num_layers, n_head=spec.num_heads,
            n_inner=intermediate, **dropout, **ids, **extra,
        )
    if spec.architecture == "llama":
        return LlamaConfig(
            hidden_size=spec.hidden_size, intermediate_size=intermediate, num_hidden_layers=spec.num_layers,
            num_attention_heads=spec.num_heads, num_key_value_heads=spec.num_kv_heads or spec.num_heads,
            max_position_embeddings=spec.max_positions, tie_word_embeddings=True, **dropout, **ids, **extra,
        )
    if spec.architecture == "modernbert":
        # Rotary positions instead of a learned table: attention can use a neighbour's distance
        # from the first step, and a small masked LM trained from scratch reaches a pre-LN
        # RoBERTa's masked-LM loss in a third of the steps (benchmarks/sentiment_experiments.md).
        # Every layer attends globally, as the inputs are short (layer_types says so to
        # transformers 5, global_attn_every_n_layers to transformers 4).
        return ModernBertConfig(  # type: ignore[call-arg]
            hidden_size=spec.hidden_size, num_hidden_layers=spec.num_layers, num_attention_heads=spec.num_heads,
            intermediate_size=intermediate, max_position_embeddings=spec.max_positions,
            layer_types=["full_attention"] * spec.num_layers, global_attn_every_n_layers=1, **dropout,
            cls_token_id=tokenizer.cls_token_id, sep_token_id=tokenizer.sep_token_id, **ids, **extra,
        )
    encoder = {
        "hidden_size": spec.hidden_size, "num_hidden_layers": spec.num_layers, "num_attention_heads": spec.num_heads,
        "intermediate_size": intermediate, **dropout, **ids, **extra,
    }
    if spec.architecture in ("roberta", "roberta-prelayernorm"):
        # RoBERTa numbers positions from pad_token_id + 1, so it needs that many more slots.
        positions = spec.max_positions + int(tokenizer.pad_token_id or 0) + 1
        # The pre-LayerNorm variant normalises each block's input rather than its output, which
        # keeps the gradients of a model trained from scratch in range at higher learning rates.
        config_class = RobertaConfig if spec.architecture == "roberta" else RobertaPreLayerNormConfig
        return config_class(max_position_embeddings=positions, type_vocab_size=1, **encoder)
    return BertConfig(max_position_embeddings=spec.max_positions, **encoder)


def apply_lora(model: PreTrainedModel, config: TrainConfig) -> Any:
    """Wrap ``model`` with LoRA adapters as the run's ``lora`` section says."""
    from peft import LoraConfig, TaskType, get_peft_model

    assert config.lora is not None
    task_types = {"clm": TaskType.CAUSAL_LM, "chat": TaskType.CAUSAL_LM, "classify": TaskType.SEQ_CLS}
    if config.task not in task_types:
        raise ModelSpecError(f"LoRA is offered for clm, chat and classify runs, not {config.task!r}")
    lora = LoraConfig(
        task_type=task_types[config.task], r=config.lora.r, lora_alpha=config.lora.alpha,
        lora_dropout=config.lora.dropout, target_modules=config.lora.target_modules,
    )
    wrapped = get_peft_model(model, lora)
    trainable, total = wrapped.get_nb_trainable_parameters()
    logger.info("LoRA adapters: %d of %d parameters train (%.2f%%)", trainable, total, 100 * trainable / total)
    return wrapped
