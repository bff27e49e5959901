"""model.dropout in a fine-tune replaces the pretrained checkpoint's dropout rates; left out, it keeps them."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from torch import nn
from transformers import AutoModelForSequenceClassification, DistilBertConfig

from shoplm.training import load_train_config, run_training
from shoplm.training.models import ModelSpecError
from tests.training.conftest import fine_tune_config, tiny_config, write_config

BAG = {"orders": [1, 2], "buckets": 1024}


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory: pytest.TempPathFactory, reviews_dir: Path) -> Path:
    """A tiny masked-LM run trained without dropout."""
    root = tmp_path_factory.mktemp("mlm")
    config = tiny_config(root / "mlm", reviews_dir, task="mlm", model={"architecture": "roberta-prelayernorm"},
                         training={"max_steps": 2, "eval_strategy": "no", "save_strategy": "no"})
    return run_training(load_train_config(write_config(root / "mlm.yaml", config))).run_dir


def fine_tune(tmp_path: Path, reviews_dir: Path, pretrained: Path, **model: object) -> nn.Module:
    config = fine_tune_config(tmp_path / "cls", reviews_dir, pretrained,
                              training={"max_steps": 2, "eval_strategy": "no", "save_strategy": "no"})
    config["model"].update(model)  # after fine_tune_config, which drops the tiny config's dropout
    final = run_training(load_train_config(write_config(tmp_path / "cls.yaml", config))).final_dir
    return AutoModelForSequenceClassification.from_pretrained(final)


def dropout_rates(model: nn.Module) -> set[float]:
    return {module.p for module in model.modules() if isinstance(module, nn.Dropout)}


@pytest.mark.parametrize("bag", [None, BAG], ids=["plain", "ngram-bag"])
def test_a_fine_tune_sets_the_dropout_it_names(
    tmp_path: Path, reviews_dir: Path, pretrained: Path, bag: dict | None
) -> None:
    model = fine_tune(tmp_path, reviews_dir, pretrained, dropout=0.3, ngram_bag=bag)

    backbone_config = model.backbone.config if bag else model.config
    assert backbone_config.hidden_dropout_prob == backbone_config.attention_probs_dropout_prob == 0.3
    assert dropout_rates(model) == {0.3}


def test_a_fine_tune_without_dropout_keeps_the_checkpoints(
    tmp_path: Path, reviews_dir: Path, pretrained: Path
) -> None:
    model = fine_tune(tmp_path, reviews_dir, pretrained, ngram_bag=BAG)

    # The default (0.1) applies to models built from scratch, not to a checkpoint's own rates.
    assert model.backbone.config.hidden_dropout_prob == 0.0
    assert dropout_rates(model) == {0.0}


def test_dropout_for_an_architecture_without_known_rates_is_named(
    tmp_path: Path, reviews_dir: Path, pretrained: Path
) -> None:
    checkpoint = tmp_path / "distilbert"
    DistilBertConfig(dim=32, hidden_dim=64, n_layers=1, n_heads=2).save_pretrained(checkpoint)
    for name in ("tokenizer.json", "tokenizer_config.json", "preprocessing.json"):
        if (pretrained / "final" / name).is_file():
            shutil.copy(pretrained / "final" / name, checkpoint / name)

    with pytest.raises(ModelSpecError, match=r"model\.dropout cannot be set for a 'distilbert' checkpoint"):
        fine_tune(tmp_path, reviews_dir, checkpoint, dropout=0.2)
