"""Result types the HTTP and gRPC clients share, built from a KServe v2 response's outputs."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Classification:
    """The chosen label of one text, its probability, and every label's probability."""

    label: str
    score: float
    probabilities: list[float]


def classifications(outputs: dict[str, np.ndarray]) -> list[Classification]:
    """One :class:`Classification` per text from a classifier's ``label``, ``score`` and
    ``probabilities`` outputs."""
    return [
        Classification(str(label), float(score), [float(p) for p in probabilities])
        for label, score, probabilities in zip(outputs["label"], outputs["score"], outputs["probabilities"],
                                               strict=True)
    ]
