"""Layer-wise learning-rate decay: the lower a transformer layer, the smaller its learning rate.

When a pretrained encoder is fine-tuned on little data, the layers near the embeddings hold the
most general features; scaling layer ``i`` of ``L`` by ``decay ** (L + 1 - i)`` (embeddings ``i = 0``,
the head and anything outside the layer stack at ``L + 1``) changes them less than the head
(Howard and Ruder, 2018; Clark et al., 2020). The Trainer's own optimizer is kept: only its
parameter groups differ.
"""

from __future__ import annotations

import re
from typing import Any, cast

import torch
from transformers import Trainer

# ``encoder.layer.3.``, ``model.layers.3.``, ``transformer.h.3.``: a numbered layer of the stack.
_LAYER_INDEX = re.compile(r"\.(?:layer|layers|h)\.(\d+)\.")
_EMBEDDINGS = re.compile(r"(?:^|\.)(?:embeddings|embed_tokens|wte|wpe)(?:\.|$)")


def parameter_depths(model: torch.nn.Module) -> tuple[dict[str, int], int]:
    """Each trainable parameter's depth (embeddings 0, layer i at i + 1, the rest on top) and the top."""
    layer_of = {
        name: int(match.group(1)) if (match := _LAYER_INDEX.search(name)) else None
        for name, parameter in model.named_parameters()
        if parameter.requires_grad
    }
    top = max((layer for layer in layer_of.values() if layer is not None), default=-1) + 2
    depths = {
        name: layer + 1 if layer is not None else 0 if _EMBEDDINGS.search(name) else top
        for name, layer in layer_of.items()
    }
    return depths, top


def layerwise_parameter_groups(
    model: torch.nn.Module, *, learning_rate: float, decay: float, weight_decay: float, decayed: set[str]
) -> list[dict[str, Any]]:
    """Optimizer groups, one per (depth, weight decay or not), each with its scaled learning rate.

    The top comes first: the Trainer logs the first group's rate, which is then the configured one.
    """
    depths, top = parameter_depths(model)
    groups: dict[tuple[int, bool], dict[str, Any]] = {}
    for name, parameter in model.named_parameters():
        if name not in depths:
            continue
        depth, with_decay = depths[name], name in decayed
        group = groups.setdefault(
            (depth, with_decay),
            {
                "params": [],
                "lr": learning_rate * decay ** (top - depth),
                "weight_decay": weight_decay if with_decay else 0.0,
            },
        )
        group["params"].append(parameter)
    return [groups[key] for key in sorted(groups, reverse=True)]


class LayerDecayTrainer(Trainer):
    """A Trainer whose optimizer gives lower layers smaller learning rates (``layer_lr_decay`` < 1)."""

    def __init__(self, *args: Any, layer_lr_decay: float = 1.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.layer_lr_decay = layer_lr_decay

    def create_optimizer(self, model: torch.nn.Module | None = None) -> torch.optim.Optimizer:
        if self.optimizer is None and self.layer_lr_decay != 1.0:
            target = self.model if model is None else model
            assert target is not None  # the Trainer was given its model
            groups = layerwise_parameter_groups(
                target,
                learning_rate=self.args.learning_rate,
                decay=self.layer_lr_decay,
                weight_decay=self.args.weight_decay,
                decayed=set(self.get_decay_parameter_names(target)),
            )
            optimizer_class, optimizer_kwargs = self.get_optimizer_cls_and_kwargs(self.args, cast(Any, target))
            self.optimizer = optimizer_class(groups, **optimizer_kwargs)
        return super().create_optimizer(model)
