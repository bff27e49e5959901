"""Per-sequence sampling settings and the token choice for one decode step."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import torch

# Temperatures below this pick greedily: dividing float32 logits by a smaller one (say 1e-45, or
# 5e-324, which float32 rounds to 0) overflows to inf and NaN probabilities.
GREEDY_BELOW = 1e-5


@dataclass(frozen=True)
class SamplingParams:
    """How one sequence picks its tokens; a temperature of 0 (or below `GREEDY_BELOW`) means greedy."""

    max_new_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    stop: tuple[str, ...] = ()
    seed: int | None = None
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0
    ignore_eos: bool = False
    allowed_first: tuple[int, ...] = ()  # token healing: the first token must be one of these
    healed_prefix: str = ""  # token healing: text the first token repeats from the prompt, not sent back


@dataclass
class SamplerState:
    """What sampling needs to remember about one sequence between steps."""

    params: SamplingParams
    generator: torch.Generator | None = None
    token_counts: Counter[int] = field(default_factory=Counter)
    chosen: int = 0  # tokens chosen so far


def make_generator(seed: int | None, device: torch.device) -> torch.Generator | None:
    """A private RNG for a seeded request, so its output does not depend on its neighbours."""
    if seed is None:
        return None
    generator = torch.Generator(device=device)
    generator.manual_seed(seed)
    return generator


def choose_tokens(logits: torch.Tensor, states: list[SamplerState]) -> list[int]:
    """Pick the next token of each row of ``logits`` [rows, vocab] by that row's settings."""
    logits = _constrained(logits.float(), states)
    chosen: list[int] = []
    greedy_rows = [i for i, s in enumerate(states) if _is_greedy(s.params)]
    greedy = {}
    if greedy_rows and all(not _has_penalty(states[i].params) for i in greedy_rows):
        picks = logits[greedy_rows].argmax(dim=-1).tolist()
        greedy = dict(zip(greedy_rows, picks, strict=True))
    for row, state in enumerate(states):
        if row in greedy:
            chosen.append(int(greedy[row]))
            continue
        row_logits = _penalized(logits[row], state)
        if _is_greedy(state.params):
            chosen.append(int(row_logits.argmax()))
        else:
            chosen.append(_sample(row_logits, state))
    for state in states:
        state.chosen += 1
    return chosen


def _constrained(logits: torch.Tensor, states: list[SamplerState]) -> torch.Tensor:
    """``logits`` with every token outside a healed sequence's allowed first tokens ruled out."""
    rows = [row for row, state in enumerate(states) if state.params.allowed_first and state.chosen == 0]
    if not rows:
        return logits
    logits = logits.clone()
    for row in rows:
        allowed = torch.tensor(states[row].params.allowed_first, device=logits.device)
        keep = logits[row, allowed]
        logits[row] = float("-inf")
        logits[row, allowed] = keep
    return logits


def _is_greedy(params: SamplingParams) -> bool:
    return params.temperature < GREEDY_BELOW


def _has_penalty(params: SamplingParams) -> bool:
    return params.frequency_penalty != 0 or params.presence_penalty != 0


def _penalized(row_logits: torch.Tensor, state: SamplerState) -> torch.Tensor:
    params = state.params
    if not _has_penalty(params) or not state.token_counts:
        return row_logits
    row_logits = row_logits.clone()
    ids = torch.tensor(list(state.token_counts), device=row_logits.device)
    counts = torch.tensor(list(state.token_counts.values()), device=row_logits.device, dtype=row_logits.dtype)
    row_logits[ids] -= counts * params.frequency_penalty + params.presence_penalty
    return row_logits


def _sample(row_logits: torch.Tensor, state: SamplerState) -> int:
    params = state.params
    scaled = row_logits / params.temperature
    if 0 < params.top_k < scaled.numel():
        kth_value = torch.topk(scaled, params.top_k).values[-1]
        scaled = scaled.masked_fill(scaled < kth_value, float("-inf"))
    if params.top_p < 1.0:
        sorted_logits, order = torch.sort(scaled, descending=True)
        cumulative = torch.softmax(sorted_logits, dim=-1).cumsum(dim=-1)
        # Drop a token once the tokens before it already reach top_p. The first always stays, set
        # explicitly: a top_p below float32's range (5e-324) compares as 0, which would drop it too.
        drop_sorted = cumulative - torch.softmax(sorted_logits, dim=-1) >= params.top_p
        drop_sorted[0] = False
        drop = torch.zeros_like(drop_sorted).scatter(0, order, drop_sorted)
        scaled = scaled.masked_fill(drop, float("-inf"))
    probabilities = torch.softmax(scaled, dim=-1)
    return int(torch.multinomial(probabilities, 1, generator=state.generator))
