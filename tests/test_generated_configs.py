"""Generated YAML configs: whatever a serve.yaml or a training config holds, loading it either
succeeds or raises ConfigError with a message, never another exception."""

from __future__ import annotations

import tempfile
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shoplm.config import ConfigError, load_serve_config
from shoplm.training.config import load_train_config

SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 10**6), st.floats(allow_nan=True), st.text(max_size=8),
    st.sampled_from(["classify", "mlm", "clm", "rtd", "chat", "embed", "generate", "roberta", "gpt2", "llama",
                     "wordpiece", "bpe", "reviews", "auto", "epoch", "steps", "no", "head_tail", "tokens", "longest"]),
)
TRAIN_KEYS = st.sampled_from([
    "task", "output_dir", "seed", "data", "model", "tokenizer", "preprocessing", "training", "lora", "rtd",
    "distributed", "dir", "corpus", "train", "validation", "architecture", "from_pretrained", "hidden_size",
    "num_layers", "num_heads", "max_positions", "kind", "vocab_size", "padding", "truncate", "max_length", "strategy",
    "epochs", "batch_size", "learning_rate", "eval_strategy", "eval_steps", "save_strategy", "early_stopping_patience",
    "metric_for_best_model", "time_budget_minutes", "ngram_bag", "orders", "buckets", "label_names", "fsdp",
])
SERVE_KEYS = st.sampled_from([
    "server", "auth", "port", "grpc_port", "host", "api_keys_file", "name", "task", "source", "version",
    "preprocessing", "batching", "max_batch_size", "limits", "max_new_tokens", "engine", "device", "required",
])


def values(keys: st.SearchStrategy[str]) -> st.SearchStrategy[object]:
    return st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                         st.dictionaries(keys, inner, max_size=5)), max_leaves=25)


TRAIN_BASE = {"task": "classify", "output_dir": "run", "data": {"corpus": "reviews"},
              "model": {"architecture": "roberta"}, "tokenizer": {"kind": "wordpiece"}}


def _load(loader: object, text: str) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "config.yaml"
        path.write_text(text, encoding="utf-8")
        try:
            loader(path)  # type: ignore[operator]
        except ConfigError as error:
            assert str(error).strip()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(changes=st.dictionaries(TRAIN_KEYS, values(TRAIN_KEYS), max_size=6), on_a_valid_base=st.booleans())
def test_a_generated_training_config_loads_or_is_a_config_error(changes: dict, on_a_valid_base: bool) -> None:
    _load(load_train_config, yaml.safe_dump({**TRAIN_BASE, **changes} if on_a_valid_base else changes))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(top=st.dictionaries(st.sampled_from(["server", "auth"]), values(SERVE_KEYS), max_size=2),
       models=st.lists(st.dictionaries(SERVE_KEYS, values(SERVE_KEYS), max_size=6), max_size=2))
def test_a_generated_serve_config_loads_or_is_a_config_error(top: dict, models: list[dict]) -> None:
    config = {**top, "models": [{"name": f"m{index}", "task": "embed", **model} for index, model in enumerate(models)]}
    _load(load_serve_config, yaml.safe_dump(config))
