"""Ranking metrics for search and recommendations: Recall@K, MRR and NDCG@K.

``ranked[q]`` lists query q's retrieved items, best first; ``relevant[q]`` is a collection of
its relevant items (gain 1 each) or a mapping item -> gain.
"""

from __future__ import annotations

from collections.abc import Collection, Hashable, Mapping, Sequence
from typing import TypeAlias

import numpy as np
from sklearn.metrics import ndcg_score

# One query's relevant items: a collection (every item has gain 1) or a mapping item -> gain.
Relevant: TypeAlias = Collection[Hashable] | Mapping[Hashable, float]


def recall_at_k(ranked: Sequence[Sequence[Hashable]], relevant: Sequence[Relevant], k: int) -> float:
    """Mean over queries of the share of each query's relevant items found in its top ``k``.

    ``ranked[q]`` lists query q's retrieved items, best first; ``relevant[q]`` is a collection of
    its relevant items or a mapping item -> gain, where items with gain > 0 count as relevant.

    Raises:
        ValueError: lengths that differ, no queries, ``k`` < 1, a ranked list with a repeated
            item, or a query without relevant items (its recall is undefined).
    """
    gains = _check_ranking(ranked, relevant, k)
    scores = []
    for items, gain in zip(ranked, gains, strict=True):
        found = sum(1 for item in items[:k] if gain.get(item, 0.0) > 0)
        scores.append(found / sum(1 for g in gain.values() if g > 0))
    return float(np.mean(scores))


def mrr(ranked: Sequence[Sequence[Hashable]], relevant: Sequence[Relevant], k: int | None = None) -> float:
    """Mean reciprocal rank of the first relevant item, 0 for a query with none in its top ``k``.

    Inputs as in :func:`recall_at_k`; ``k`` None looks at the whole ranked list.

    Raises:
        ValueError: as :func:`recall_at_k`.
    """
    gains = _check_ranking(ranked, relevant, k)
    scores = []
    for items, gain in zip(ranked, gains, strict=True):
        cutoff = items if k is None else items[:k]
        rank = next((i + 1 for i, item in enumerate(cutoff) if gain.get(item, 0.0) > 0), None)
        scores.append(0.0 if rank is None else 1.0 / rank)
    return float(np.mean(scores))


def ndcg_at_k(ranked: Sequence[Sequence[Hashable]], relevant: Sequence[Relevant], k: int) -> float:
    """Mean NDCG@k with graded gains, computed by ``sklearn.metrics.ndcg_score``.

    Inputs as in :func:`recall_at_k`; a collection gives every relevant item gain 1. The ideal
    ranking includes relevant items that were not retrieved, so a list that misses them scores
    below 1.

    Raises:
        ValueError: as :func:`recall_at_k`, or a negative gain.
    """
    gains = _check_ranking(ranked, relevant, k)
    for q, gain in enumerate(gains):
        if any(g < 0 for g in gain.values()):
            raise ValueError(f"relevant[{q}] has a negative gain; NDCG needs gains >= 0")
    # ndcg_score scores equal-length rows of (gain, score). Per query the row holds max(k, len)
    # ranked slots with descending scores (slots past the list's end are empty, gain 0), then
    # the relevant items that were not retrieved with the lowest score: they count for the ideal
    # ranking but can never reach the top k.
    rows: list[tuple[list[float], list[float]]] = []
    for items, gain in zip(ranked, gains, strict=True):
        slots = max(k, len(items))
        true = [gain.get(item, 0.0) for item in items] + [0.0] * (slots - len(items))
        retrieved = set(items)
        missed = [g for item, g in gain.items() if g > 0 and item not in retrieved]
        true += missed
        score = [float(slots - i) for i in range(slots)] + [0.0] * len(missed)
        rows.append((true, score))
    # ndcg_score refuses rows of a single document.
    width = max(2, *(len(true) for true, _ in rows))
    y_true = np.zeros((len(rows), width))
    y_score = np.full((len(rows), width), -1.0)
    for q, (true, score) in enumerate(rows):
        y_true[q, : len(true)] = true
        y_score[q, : len(score)] = score
    return float(ndcg_score(y_true, y_score, k=k))


def _check_ranking(
    ranked: Sequence[Sequence[Hashable]], relevant: Sequence[Relevant], k: int | None
) -> list[dict[Hashable, float]]:
    """Validate ranking inputs and return each query's relevant items as item -> gain."""
    if len(ranked) != len(relevant):
        raise ValueError(f"ranked has {len(ranked)} queries but relevant has {len(relevant)}")
    if not ranked:
        raise ValueError("no queries to evaluate")
    if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 1):
        raise ValueError(f"k must be a positive integer, got {k!r}")
    gains: list[dict[Hashable, float]] = []
    for q, (items, rel) in enumerate(zip(ranked, relevant, strict=True)):
        # A str is a sequence of characters: almost certainly one item id passed where a list was meant.
        if isinstance(items, str) or isinstance(rel, str):
            raise ValueError(f"ranked[{q}] and relevant[{q}] must be collections of item ids, not a str")
        if len(set(items)) != len(items):
            raise ValueError(f"ranked[{q}] lists an item more than once")
        gain = {item: float(g) for item, g in rel.items()} if isinstance(rel, Mapping) else dict.fromkeys(rel, 1.0)
        if not any(g > 0 for g in gain.values()):
            raise ValueError(f"relevant[{q}] has no relevant items; its ranking metrics are undefined")
        gains.append(gain)
    return gains
