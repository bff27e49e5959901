"""Cutting a text or a list of token ids down to a budget."""

from __future__ import annotations

from typing import Literal

Strategy = Literal["head", "tail", "head_tail"]
Unit = Literal["chars", "tokens"]


class TextTooLongError(ValueError):
    """A text exceeds its length limit and the config says to reject rather than truncate."""

    def __init__(self, length: int, limit: int, unit: Unit) -> None:
        self.length = length
        self.limit = limit
        self.unit = unit
        super().__init__(
            f"text is {length} {unit} long, over the limit of {limit} {unit} (truncate.on_overflow is 'error')"
        )


def kept_slices(length: int, budget: int, strategy: Strategy, head_fraction: float) -> list[slice]:
    """Return the slices of a `length`-long sequence that survive cutting it to `budget`.

    For head_tail the head keeps `floor(budget * head_fraction)` items and the tail the rest,
    so the kept items always number exactly `min(length, budget)`.
    """
    if budget < 0:
        raise ValueError(f"budget must be >= 0, got {budget}")
    if length <= budget:
        return [slice(0, length)]
    if strategy == "head":
        return [slice(0, budget)]
    if strategy == "tail":
        return [slice(length - budget, length)]
    head = int(budget * head_fraction)
    return [slice(0, head), slice(length - (budget - head), length)]


def truncate_text(
    text: str,
    budget: int,
    strategy: Strategy,
    head_fraction: float,
    *,
    trim_whitespace: bool,
) -> str:
    """Return `text` cut to at most `budget` characters, keeping the part `strategy` names.

    With `trim_whitespace`, whitespace left at the new ends is stripped and the whitespace
    meeting at a head_tail join is kept as one character, so that text whose whitespace was
    collapsed stays collapsed.
    """
    pieces = [text[part] for part in kept_slices(len(text), budget, strategy, head_fraction)]
    if not trim_whitespace:
        return "".join(pieces)
    if len(pieces) == 1:
        return pieces[0].strip()
    head, tail = pieces
    gap = next((char for char in (head[-1:], tail[:1]) if char.isspace()), "")
    return (head.rstrip() + gap + tail.lstrip()).strip()


def truncate_ids(ids: list[int], budget: int, strategy: Strategy, head_fraction: float) -> list[int]:
    """Return `ids` cut to at most `budget` items, keeping the part `strategy` names."""
    slices = kept_slices(len(ids), budget, strategy, head_fraction)
    return [token for part in slices for token in ids[part]]


def must_truncate(length: int, limit: int, unit: Unit, on_overflow: str) -> bool:
    """Tell whether a `length`-long sequence has to be cut to `limit`.

    Raises TextTooLongError instead of answering True when `on_overflow` is "error".
    """
    if length <= limit:
        return False
    if on_overflow == "error":
        raise TextTooLongError(length=length, limit=limit, unit=unit)
    return True
