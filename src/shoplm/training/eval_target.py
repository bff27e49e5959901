"""What ``shoplm eval`` and ``shoplm publish`` point at: runs, model directories, published names."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from shoplm.config import ConfigError, env_settings, format_validation_error, load_serve_config, read_yaml_mapping
from shoplm.data import prepared_corpus_dir
from shoplm.training import run_dir as runs
from shoplm.training.config import TrainConfig
from shoplm.training.data import SPLIT_FILES, split_file
from shoplm.training.run_dir import FINAL_MODEL_DIR

DEFAULT_SERVE_CONFIG = Path("configs/serve.yaml")


@dataclass(frozen=True)
class EvalTarget:
    """The model to measure, the data to measure it on, and its run (for reports) if it has one."""

    model_dir: Path
    data: Path
    run_dir: Path | None


def default_repository() -> Path:
    """SHOPLM_MODEL_REPOSITORY, else the repository of configs/serve.yaml, else ./models."""
    env = env_settings().model_repository
    if env is not None:
        return env
    if DEFAULT_SERVE_CONFIG.is_file():
        try:
            return load_serve_config(DEFAULT_SERVE_CONFIG).server.model_repository
        except ConfigError:
            pass  # a broken serving config is reported by the server; publishing still has a default
    return Path("models")


def resolve_eval_target(target: str, split: str | None, data: Path | None, repository: Path | None) -> EvalTarget:
    """Find the model and data for ``shoplm eval TARGET``; errors name what is missing.

    ``split`` (default test) names a split of a run's data; ``data`` a file instead, not both.
    """
    if split is not None and data is not None:
        raise ConfigError(f"give --split or --data, not both (--split {split}, --data {data})")
    split = split or "test"
    if split not in SPLIT_FILES:
        raise ConfigError(f"--split must be one of {', '.join(SPLIT_FILES)}, got {split!r}")
    path = Path(target)
    if (path / FINAL_MODEL_DIR / "config.json").is_file():
        return EvalTarget(path / FINAL_MODEL_DIR, data or run_split(path, split), path)
    if (path / "config.json").is_file():
        model_dir = path
    else:
        model_dir = published_model(target, repository or default_repository())
    if data is None:
        raise ConfigError(f"{target} is a model, not a run: it has no splits; pass --data FILE.jsonl to say what to "
                          "measure it on")
    return EvalTarget(model_dir, data, None)


def published_model(name: str, repository: Path) -> Path:
    """The newest version of ``name`` in the model repository."""
    from shoplm.serving.loading import ModelSourceError, latest_version

    if Path(name).exists():
        raise ConfigError(f"{name} is neither a run directory (final/config.json) nor a model (config.json)")
    try:
        return repository / name / latest_version(repository / name)
    except ModelSourceError as error:
        raise ConfigError(f"{name!r} is not a path, and the model repository has no such model ({error})") from None


def run_split(run: Path, split: str) -> Path:
    """The ``split`` file of the data a run trained on, from its resolved config."""
    config_path = run / runs.RESOLVED_CONFIG
    if not config_path.is_file():
        raise ConfigError(f"{run} has no {runs.RESOLVED_CONFIG}; pass --data FILE.jsonl")
    try:
        config = TrainConfig.model_validate(read_yaml_mapping(config_path, "resolved config"))
    except ValidationError as error:
        raise ConfigError(format_validation_error(error, str(config_path), TrainConfig)) from None
    if config.data.dir is not None:
        return split_file(config.data.dir, split)
    if config.data.corpus is not None:
        return split_file(prepared_corpus_dir(config.data.corpus), split)
    if split == "validation" and config.data.validation:
        return config.data.validation[0]
    raise ConfigError(f"the run trained on explicit files, so it has no {split!r} split; pass --data FILE.jsonl")
