"""Labels: raw values from the files to integer class ids.

The rule, in this order:

* ``--label-from-rating``: the value is a 1-5 rating (number or numeric string); 4 and up is
  1 (positive), 2 and below is 0 (negative), anything in between is dropped as
  ``neutral_rating``, and anything else as ``bad_label``.
* Otherwise every label is read as a key: booleans become ``0``/``1``, integers (and integral
  floats or numeric strings like ``"2"`` or ``"2.0"``) their decimal form, other strings
  themselves, stripped. A null or blank value is ``missing_label``; a list, an object or a
  fractional number is ``bad_label``.
* After reading everything: when every key is an integer from 0 to ``MAX_CLASS_ID`` the ids
  are those integers. Otherwise the distinct keys are sorted (integers by value, so ``-1``/``1``
  become 0/1) and numbered from 0, and the card records them in order as ``label_names`` (so
  ``neg``/``pos`` become 0/1).

Training and evaluation read labels back with :func:`class_id_of`: an id, or a class name.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from shoplm.data.rows import DropReason

_INTEGRAL = re.compile(r"[+-]?\d+(?:\.0*)?")
# Integer labels above this are not class ids (a classifier would need that many outputs).
MAX_CLASS_ID = 9999
# Longer digit strings stay text: Python refuses to convert very long ones, and no id is that long.
_MAX_INTEGER_CHARS = 40
RATING_LABEL_NAMES = ("negative", "positive")


def label_key(value: object, from_rating: bool = False) -> str | DropReason:
    """The canonical key of a raw label value, or the reason the row is dropped."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return DropReason.MISSING_LABEL
    if from_rating:
        return _rating_key(value)
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return DropReason.MISSING_LABEL
        return str(int(value)) if value.is_integer() else DropReason.BAD_LABEL
    if isinstance(value, str):
        text = value.strip()
        if _INTEGRAL.fullmatch(text) and len(text) <= _MAX_INTEGER_CHARS:
            return str(int(text.split(".")[0]))
        return text
    return DropReason.BAD_LABEL


def _rating_key(value: object) -> str | DropReason:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return DropReason.BAD_LABEL
    try:
        rating = float(value)
    except ValueError:
        return DropReason.BAD_LABEL
    if math.isnan(rating) or not 1 <= rating <= 5:
        return DropReason.BAD_LABEL
    if rating >= 4:
        return "1"
    if rating <= 2:
        return "0"
    return DropReason.NEUTRAL_RATING


@dataclass(frozen=True)
class LabelMap:
    """Keys to ids; `names` is set when the keys were strings and gives each id's key."""

    ids: dict[str, int]
    names: list[str] | None

    def to_id(self, key: str) -> int:
        """The id of `key` (a key seen while building the map)."""
        return self.ids[key]


def build_label_map(keys: Iterable[str]) -> LabelMap:
    """The id of every key, following the module's rule."""
    distinct = set(keys)
    integers = all(_INTEGRAL.fullmatch(key) for key in distinct)
    if integers and all(0 <= int(key) <= MAX_CLASS_ID for key in distinct):
        return LabelMap(ids={key: int(key) for key in distinct}, names=None)
    names = sorted(distinct, key=int) if integers else sorted(distinct)
    return LabelMap(ids={key: index for index, key in enumerate(names)}, names=names)


def class_id_of(label: object, names: Sequence[str]) -> int | None:
    """The class id a training or evaluation row's label stands for, or None.

    A prepared split holds ids; a hand-made file may hold the class names (``names``), or ids as
    decimal strings.
    """
    if isinstance(label, str):
        text = label.strip()
        if text in names:
            return names.index(text)
        label = int(text) if text.isdecimal() else None
    if isinstance(label, bool) or not isinstance(label, int) or not 0 <= label < len(names):
        return None
    return label
