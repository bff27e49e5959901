"""Deterministic train/validation/test assignment by a hash of the normalized text.

A row's split depends on its normalized text alone: the first 8 bytes of its sha256, read
as an unsigned integer, fall into one of three ranges sized by the split fractions. There
is no salt and no random state, so

* the same text lands in the same split in every run, on every machine;
* adding rows never moves existing rows to another split (only changing the fractions does);
* duplicates of a text can never straddle train and test.

Stratification: the hash is independent of the label, so each label's rows divide in the
split proportions in expectation (binomially: with n rows of a label, the train share is
off by about sqrt(p(1-p)/n), under 1 percentage point from a few thousand rows). The card
reports the counts per label and split so the actual balance is visible.
"""

from __future__ import annotations

import math

from shoplm.data.errors import SettingsError

SPLITS = ("train", "validation", "test")
DEFAULT_FRACTIONS = (0.8, 0.1, 0.1)
SplitFractions = tuple[float, float, float]
_HASH_SPACE = 1 << 64


def parse_split(spec: str) -> SplitFractions:
    """Read ``"0.8,0.1,0.1"`` (train, validation, test fractions summing to 1)."""
    parts = [part.strip() for part in spec.split(",")]
    try:
        values = [float(part) for part in parts]
    except ValueError:
        raise SettingsError(f"--split {spec!r}: expected three numbers like 0.8,0.1,0.1") from None
    if len(values) != 3:
        raise SettingsError(f"--split {spec!r}: expected three fractions (train,validation,test), got {len(values)}")
    fractions = (values[0], values[1], values[2])
    check_fractions(fractions)
    return fractions


def check_fractions(fractions: SplitFractions) -> None:
    """Raise SettingsError unless the fractions are in [0, 1], sum to 1 and train is positive."""
    if any(not math.isfinite(value) or value < 0 or value > 1 for value in fractions):
        raise SettingsError(f"split fractions must lie between 0 and 1, got {fractions}")
    if not math.isclose(sum(fractions), 1.0, abs_tol=1e-6):
        raise SettingsError(f"split fractions must sum to 1, got {fractions} (sum {sum(fractions):g})")
    if fractions[0] == 0:
        raise SettingsError(f"split fractions: train must be above 0, got {fractions}")


class SplitAssigner:
    """Maps a text digest (sha256) to its split name."""

    def __init__(self, fractions: SplitFractions) -> None:
        check_fractions(fractions)
        train_end = round(fractions[0] * _HASH_SPACE)
        validation_end = round((fractions[0] + fractions[1]) * _HASH_SPACE)
        self._bounds = (train_end, validation_end)

    def assign(self, digest: bytes) -> str:
        """The split of the row whose normalized text has sha256 `digest`."""
        position = int.from_bytes(digest[:8], "big")
        if position < self._bounds[0]:
            return SPLITS[0]
        if position < self._bounds[1]:
            return SPLITS[1]
        return SPLITS[2]
