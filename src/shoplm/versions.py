"""Version names in the model repository: which are numbers, and which number is the latest.

``version: latest`` and ``shoplm publish`` (one above the highest) agree on one rule: a version
named by dot-separated numbers (``3``, ``1.5``) is ordered by those numbers; any other name
(``staging``) is served only when asked for by name, so publishing one never changes what
``latest`` serves.
"""

from __future__ import annotations

import re
from pathlib import Path

_NUMBERED = re.compile(r"\d+(?:\.\d+)*")


def version_number(name: str) -> tuple[int, ...] | None:
    """``(1, 5)`` for ``"1.5"``; None for a name that is not dot-separated numbers."""
    return tuple(int(part) for part in name.split(".")) if _NUMBERED.fullmatch(name) else None


def version_names(directory: Path) -> list[str]:
    """The versions under ``<repository>/<name>``; hidden entries are versions still being written."""
    if not directory.is_dir():
        return []
    return sorted(child.name for child in directory.iterdir() if child.is_dir() and not child.name.startswith("."))


def highest_numbered(names: list[str]) -> str | None:
    """The name with the highest number (ties, such as ``1`` and ``01``, go to the later name)."""
    numbered = [(number, name) for name in names if (number := version_number(name)) is not None]
    return max(numbered)[1] if numbered else None
