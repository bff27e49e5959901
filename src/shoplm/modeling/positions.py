"""How many tokens a transformers model's position embeddings take."""

from __future__ import annotations

from transformers import PretrainedConfig

# These number positions from padding_idx + 1, so that many slots of the table are never used.
_OFFSET_POSITIONS = ("roberta", "roberta-prelayernorm", "xlm-roberta", "camembert")


def usable_positions(config: PretrainedConfig) -> int | None:
    """The longest token sequence the model takes, or None when its config sets no limit."""
    positions = int(getattr(config, "max_position_embeddings", 0) or 0)
    if not positions:
        return None
    if getattr(config, "model_type", "") in _OFFSET_POSITIONS:
        positions -= int(getattr(config, "pad_token_id", 0) or 0) + 1
    return positions
