"""Pydantic models for shoplm's configuration files and the environment overrides.

Every environment variable shoplm reads is declared in :class:`EnvSettings`; nothing else
reads ``os.environ``.
"""

from __future__ import annotations

import difflib
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal, cast, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from shoplm.textproc import PreprocessConfig

Task = Literal["classify", "embed", "fill-mask", "generate"]
DType = Literal["float32", "bfloat16", "float16", "auto"]
Engine = Literal["transformers", "llama_cpp"]
LogLevel = Literal["debug", "info", "warning", "error"]
# Model names and versions become directory names in the model repository and path segments in URLs.
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


class ConfigError(ValueError):
    """A configuration file is missing, unreadable or invalid; the message names the field."""


class StrictModel(BaseModel):
    """Base for config groups: unknown fields are errors, so typos fail at load time."""

    model_config = ConfigDict(extra="forbid")


class EnvSettings(BaseSettings):
    """Environment variables (prefix ``SHOPLM_``); each overrides the matching config value."""

    model_config = SettingsConfigDict(env_prefix="SHOPLM_", extra="ignore")

    # Comma-separated bearer tokens accepted on inference routes (admin keys are accepted too).
    api_keys: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Comma-separated bearer tokens accepted on /admin routes; when empty, api_keys apply.
    admin_api_keys: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Where converted GGUF checkpoints are cached (the first load dequantizes, later ones reuse).
    cache_dir: Path = Path.home() / ".cache" / "shoplm"
    # Overrides server.model_repository in serve.yaml.
    model_repository: Path | None = None
    # Log level for the JSON logs (debug, info, warning, error).
    log_level: str | None = None

    @field_validator("api_keys", "admin_api_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: object) -> object:
        if isinstance(value, str):
            return [key.strip() for key in value.split(",") if key.strip()]
        return value


@lru_cache(maxsize=1)
def env_settings() -> EnvSettings:
    """The process's environment settings, read once."""
    return EnvSettings()


class BatchingConfig(StrictModel):
    """Dynamic batching of one model's requests."""

    max_batch_size: int = Field(16, ge=1, le=1024, description="Most inputs in one forward pass.")
    max_batch_tokens: int = Field(
        8192, ge=1, description="Most padded tokens (rows x longest row) in one forward pass."
    )
    max_queue_delay_ms: float = Field(
        2.0,
        ge=0,
        le=1000,
        description="Longest a request waits for company while the model is busy; "
        "a request that arrives at an idle model runs at once.",
    )
    max_queue_size: int = Field(
        256, ge=1, description="Inputs that may wait; beyond this the answer is 429 with Retry-After."
    )
    max_num_seqs: int = Field(
        8, ge=1, le=256, description="generate: most sequences decoded together in one step."
    )


class LimitsConfig(StrictModel):
    """Per-model request limits; a request over a limit is answered 400 naming it."""

    max_input_tokens: int = Field(2048, ge=1, description="Most prompt/input tokens per input.")
    max_new_tokens: int = Field(512, ge=1, description="generate: most tokens one request may ask for.")
    default_max_new_tokens: int = Field(
        128, ge=1, description="generate: tokens generated when a request does not say."
    )
    max_inputs_per_request: int = Field(64, ge=1, description="Most texts in one request.")
    max_stop_sequences: int = Field(4, ge=0, description="generate: most stop sequences.")

    @model_validator(mode="after")
    def _default_within_max(self) -> LimitsConfig:
        if self.default_max_new_tokens > self.max_new_tokens:
            raise ValueError(
                f"default_max_new_tokens ({self.default_max_new_tokens}) exceeds "
                f"max_new_tokens ({self.max_new_tokens})"
            )
        return self


class EmbedConfig(StrictModel):
    """How token states become one vector (task ``embed``)."""

    pooling: Literal["mean", "cls"] = "mean"
    normalize: bool = Field(True, description="L2-normalize the pooled vector.")


class ModelConfig(StrictModel):
    """One served model."""

    name: str = Field(pattern=NAME_PATTERN)
    task: Task
    source: str = Field(
        "repository",
        description="'package:smollm2', 'package:all-minilm-l6-v2', 'repository' "
        "(<model_repository>/<name>/<version>) or a local checkpoint directory.",
    )
    gguf_file: str | None = Field(None, description="GGUF file inside a local source directory.")
    version: str = Field(
        "1",
        pattern=NAME_PATTERN,
        description="Version served; 'latest' picks the highest version in the model repository.",
    )
    device: str = Field("cpu", description="'cpu', 'cuda', 'cuda:N' or 'auto'.")
    dtype: DType = Field(
        "float32",
        description="'auto': bfloat16 where the device computes it natively (CUDA with bf16, CPUs with "
        "AMX or AVX512-BF16), float16 on other CUDA GPUs, else float32.",
    )
    engine: Engine = Field(
        "transformers",
        description="generate: 'llama_cpp' runs a GGUF source through llama.cpp on the CPU (optional extra "
        "shoplm[llamacpp]; dtype does not apply, the GGUF's own quantization is used).",
    )
    load_on_start: bool = True
    required: bool = Field(
        True,
        description="False: a model with no files yet (e.g. not yet published) is skipped at start with a "
        "warning and does not hold back readiness; load it later through /admin.",
    )
    preprocessing: PreprocessConfig | None = Field(
        None, description="Data interface; default: the model's preprocessing.json, else defaults."
    )
    batching: BatchingConfig = Field(default_factory=BatchingConfig)
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    embedding: EmbedConfig = Field(default_factory=EmbedConfig)
    token_healing: bool = Field(
        False,
        description="generate: a completion prompt that ends inside a token (a word typed in part) has its "
        "last tokens taken back and regenerated, so the completion can finish the word.",
    )
    warmup: bool = Field(True, description="Run one tiny request after loading.")

    @field_validator("device")
    @classmethod
    def _known_device(cls, value: str) -> str:
        if value in ("cpu", "cuda", "auto") or (value.startswith("cuda:") and value[5:].isdigit()):
            return value
        raise ValueError(f"device must be 'cpu', 'cuda', 'cuda:N' or 'auto', got {value!r}")

    @model_validator(mode="after")
    def _engine_fits(self) -> ModelConfig:
        if self.token_healing and self.task != "generate":
            raise ValueError(f"token_healing is for task 'generate', not {self.task!r}")
        if self.engine == "llama_cpp":
            if self.task != "generate":
                raise ValueError(f"engine 'llama_cpp' serves task 'generate', not {self.task!r}")
            if self.device.startswith("cuda"):
                raise ValueError("engine 'llama_cpp' runs on the CPU; set device: cpu")
        return self


class AuthConfig(StrictModel):
    """Bearer API keys. Prefer the SHOPLM_API_KEYS / SHOPLM_ADMIN_API_KEYS variables or a file."""

    api_keys_file: Path | None = Field(None, description="File with one inference key per line.")
    admin_api_keys_file: Path | None = Field(None, description="File with one admin key per line.")


class ServerConfig(StrictModel):
    """Process-wide server settings."""

    host: str = "127.0.0.1"
    port: int = Field(8100, ge=0, le=65535)
    grpc_port: int = Field(8101, ge=0, le=65535, description="0 disables the gRPC server.")
    model_repository: Path = Field(Path("models"), description="Root of <name>/<version>/ models.")
    max_body_bytes: int = Field(1_048_576, ge=1024, description="Larger request bodies get 413.")
    request_timeout_s: float = Field(60.0, gt=0, description="Longer requests get 504.")
    shutdown_grace_s: float = Field(30.0, ge=0, description="Time in-flight requests get on SIGTERM.")
    log_level: LogLevel = "info"
    watch_config: bool = Field(False, description="Reload the models when this file changes.")
    watch_interval_s: float = Field(2.0, gt=0, description="How often the file is checked.")

    @model_validator(mode="after")
    def _ports_differ(self) -> ServerConfig:
        if self.port and self.port == self.grpc_port:
            raise ValueError(f"port and grpc_port are both {self.port}; HTTP and gRPC each need a port of their own")
        return self


class ServeConfig(StrictModel):
    """The model server's configuration file (``configs/serve.yaml``)."""

    server: ServerConfig = Field(default_factory=ServerConfig)
    auth: AuthConfig = Field(default_factory=AuthConfig)
    models: list[ModelConfig] = Field(default_factory=list)

    @field_validator("models")
    @classmethod
    def _unique_names(cls, models: list[ModelConfig]) -> list[ModelConfig]:
        names = [model.name for model in models]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"model names must be unique; repeated: {', '.join(duplicates)}")
        return models

    def model(self, name: str) -> ModelConfig | None:
        """The model named ``name``, or None."""
        return next((model for model in self.models if model.name == name), None)


def format_validation_error(error: ValidationError, source: str, model: type[BaseModel] | None = None) -> str:
    """One line per problem, each naming the dotted field path and pydantic's reason.

    Given the validated `model`, an unknown field also gets the closest known name at its place
    ("did you mean 'batch_size'?").
    """
    lines = [f"invalid configuration in {source}:"]
    for problem in error.errors():
        location = ".".join(str(part) for part in problem["loc"]) or "(root)"
        message = problem["msg"]
        if problem["type"] == "extra_forbidden" and model is not None:
            message += _did_you_mean(model, problem["loc"])
        lines.append(f"  {location}: {message}")
    return "\n".join(lines)


def _did_you_mean(model: type[BaseModel], location: tuple[int | str, ...]) -> str:
    parent: type[BaseModel] | None = model
    for part in location[:-1]:
        if parent is None:
            return ""
        if isinstance(part, str):
            field = parent.model_fields.get(part)
            parent = _model_in(field.annotation) if field is not None else None
    if parent is None:
        return ""
    known = [field.alias or name for name, field in parent.model_fields.items()]
    close = difflib.get_close_matches(str(location[-1]), known, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model a field holds, directly or inside Optional, a list or a dict."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for argument in get_args(annotation):
        found = _model_in(argument)
        if found is not None:
            return found
    return None


def load_serve_config(path: Path) -> ServeConfig:
    """Read and validate a serve.yaml; relative paths in it resolve against its directory."""
    data = read_yaml_mapping(path)
    try:
        config = ServeConfig.model_validate(data)
    except ValidationError as error:
        raise ConfigError(format_validation_error(error, str(path), ServeConfig)) from None
    base = path.resolve().parent
    env = env_settings()
    repository = env.model_repository or config.server.model_repository
    config.server.model_repository = _resolve(base, repository)
    if config.auth.api_keys_file:
        config.auth.api_keys_file = _resolve(base, config.auth.api_keys_file)
        read_key_file(config.auth.api_keys_file, "auth.api_keys_file")
    if config.auth.admin_api_keys_file:
        config.auth.admin_api_keys_file = _resolve(base, config.auth.admin_api_keys_file)
        read_key_file(config.auth.admin_api_keys_file, "auth.admin_api_keys_file")
    if env.log_level:
        config.server.log_level = _env_log_level(env.log_level)
    for model in config.models:
        if model.preprocessing is not None:
            model.preprocessing = model.preprocessing.with_paths_from(base)
        if model.source not in ("repository",) and not model.source.startswith("package:"):
            model.source = str(_resolve(base, Path(model.source)))
    return config


def read_key_file(path: Path, field: str) -> frozenset[str]:
    """The API keys in ``path``, one a line (``#`` starts a comment line), or ConfigError naming
    ``field``. A file without keys is an error: it would leave the routes it guards open."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as error:
        raise ConfigError(f"{field}: {path} is not UTF-8 text: {error.reason} at byte {error.start}") from None
    except OSError as error:
        raise ConfigError(f"{field}: cannot read {path}: {error.strerror or error}") from None
    keys = frozenset(line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#"))
    if not keys:
        raise ConfigError(f"{field}: {path} holds no keys; remove the field to run without keys from a file")
    return keys


def _env_log_level(value: str) -> LogLevel:
    level = value.strip().lower()
    if level not in get_args(LogLevel):
        raise ConfigError(f"SHOPLM_LOG_LEVEL: {value!r} is not one of {', '.join(get_args(LogLevel))}")
    return cast(LogLevel, level)


def _resolve(base: Path, path: Path) -> Path:
    path = path.expanduser()
    return path if path.is_absolute() else (base / path).resolve()


def read_yaml_mapping(path: Path, what: str = "config file") -> dict[str, object]:
    """The top-level mapping of a YAML file ({} when the file is empty), or ConfigError saying why not."""
    if not path.exists():
        raise ConfigError(f"{what} not found: {path}")
    if not path.is_file():
        raise ConfigError(f"{what} {path} is not a file")
    try:
        with path.open(encoding="utf-8") as handle:
            data = yaml.safe_load(handle)
    except UnicodeDecodeError as error:
        raise ConfigError(f"{what} {path} is not UTF-8 text: {error.reason} at byte {error.start}") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{what} {path} is not valid YAML: {error}") from None
    except OSError as error:
        raise ConfigError(f"cannot read {what} {path}: {error.strerror or error}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{what} {path} must hold a mapping of fields at the top level, got {type(data).__name__}")
    return data
