"""Layer-wise learning-rate decay: which rate each parameter gets, and that training follows it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import (
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    GPT2Config,
    LlamaConfig,
    RobertaPreLayerNormConfig,
    TrainingArguments,
)

from shoplm.config import ConfigError
from shoplm.modeling import NgramBagForSequenceClassification
from shoplm.training import load_train_config, run_training
from shoplm.training.layer_decay import LayerDecayTrainer, parameter_depths
from tests.training.conftest import fine_tune_config, tiny_config, write_config


def _bag_classifier() -> NgramBagForSequenceClassification:
    backbone = AutoModelForSequenceClassification.from_config(
        RobertaPreLayerNormConfig(
            vocab_size=50, hidden_size=16, num_hidden_layers=3, num_attention_heads=2, intermediate_size=32
        )
    )
    return NgramBagForSequenceClassification.wrapping(backbone, ngram_buckets=64)


def _learning_rates(trainer: LayerDecayTrainer) -> dict[str, float]:
    rate_of = {id(p): group["lr"] for group in trainer.create_optimizer().param_groups for p in group["params"]}
    return {name: rate_of[id(p)] for name, p in trainer.model.named_parameters()}


def test_each_layer_of_a_bag_classifier_gets_its_decayed_rate(tmp_path: Path) -> None:
    model = _bag_classifier()
    args = TrainingArguments(output_dir=str(tmp_path), learning_rate=1e-3, weight_decay=0.01, use_cpu=True,
                             report_to="none")

    rates = _learning_rates(LayerDecayTrainer(model=model, args=args, layer_lr_decay=0.5))

    stem = "backbone.roberta_prelayernorm."
    assert rates[stem + "embeddings.word_embeddings.weight"] == pytest.approx(1e-3 * 0.5**4)
    assert rates[stem + "encoder.layer.0.attention.self.query.weight"] == pytest.approx(1e-3 * 0.5**3)
    assert rates[stem + "encoder.layer.2.output.dense.bias"] == pytest.approx(1e-3 * 0.5)
    for top in ("backbone.classifier.out_proj.weight", "ngram_weights.weight", stem + "LayerNorm.weight"):
        assert rates[top] == pytest.approx(1e-3)
    # Every parameter is in exactly one group, and the logged (first) group runs at the configured rate.
    optimizer = LayerDecayTrainer(model=model, args=args, layer_lr_decay=0.5).create_optimizer()
    assert sum(len(group["params"]) for group in optimizer.param_groups) == len(list(model.parameters()))
    assert optimizer.param_groups[0]["lr"] == pytest.approx(1e-3)
    no_decay = {id(p) for group in optimizer.param_groups if group["weight_decay"] == 0 for p in group["params"]}
    assert id(model.backbone.classifier.dense.bias) in no_decay
    assert id(model.backbone.classifier.dense.weight) not in no_decay


def test_without_decay_every_parameter_keeps_the_configured_rate(tmp_path: Path) -> None:
    args = TrainingArguments(output_dir=str(tmp_path), learning_rate=3e-4, use_cpu=True, report_to="none")

    rates = _learning_rates(LayerDecayTrainer(model=_bag_classifier(), args=args))

    assert set(rates.values()) == {3e-4}  # the Trainer's own groups, untouched


@pytest.mark.parametrize(
    ("config", "embeddings", "first_layer"),
    [
        (
            GPT2Config(n_embd=16, n_layer=2, n_head=2, vocab_size=50),
            "transformer.wte.weight",
            "transformer.h.0.attn.c_attn.weight",
        ),
        (
            LlamaConfig(
                hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2, vocab_size=50
            ),
            "model.embed_tokens.weight",
            "model.layers.0.self_attn.q_proj.weight",
        ),
    ],
)
def test_causal_models_layers_are_found(config: object, embeddings: str, first_layer: str) -> None:
    depths, top = parameter_depths(AutoModelForCausalLM.from_config(config))

    assert top == 3 and depths[embeddings] == 0 and depths[first_layer] == 1
    assert max(depths.values()) == top  # the final norm (and an untied head) sit on top


def _mean_change(before: torch.nn.Module, after: torch.nn.Module, name: str) -> float:
    return (dict(after.named_parameters())[name] - dict(before.named_parameters())[name]).abs().mean().item()


def test_fine_tuning_with_decay_moves_the_lower_layers_less(tmp_path: Path, reviews_dir: Path) -> None:
    mlm = run_training(load_train_config(write_config(
        tmp_path / "mlm.yaml", tiny_config(tmp_path / "mlm", reviews_dir, task="mlm")))).run_dir
    pretrained = AutoModelForSequenceClassification.from_pretrained(mlm / "final")
    lower, upper = "roberta.encoder.layer.0.attention.self.query.weight", "roberta.encoder.layer.1.output.dense.weight"
    ratios = {}
    for decay in (1.0, 0.25):
        config = fine_tune_config(tmp_path / f"cls-{decay}", reviews_dir, mlm,
                                  training={"layer_lr_decay": decay, "eval_strategy": "no", "save_strategy": "no"})
        run = run_training(load_train_config(write_config(tmp_path / f"cls-{decay}.yaml", config))).run_dir
        tuned = AutoModelForSequenceClassification.from_pretrained(run / "final")
        ratios[decay] = _mean_change(pretrained, tuned, lower) / _mean_change(pretrained, tuned, upper)

    # Adam moves each weight by about its learning rate a step: a quarter of the upper layer's here.
    assert ratios[0.25] < 0.5 * ratios[1.0]


@pytest.mark.parametrize("decay", [0, 1.5])
def test_a_decay_outside_0_to_1_is_named(tmp_path: Path, reviews_dir: Path, decay: float) -> None:
    config = tiny_config(tmp_path / "run", reviews_dir, training={"layer_lr_decay": decay})

    with pytest.raises(ConfigError, match=r"training\.layer_lr_decay"):
        load_train_config(write_config(tmp_path / "bad.yaml", config))
