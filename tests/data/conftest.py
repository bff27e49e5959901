"""Fixtures for the data preparation tests: file writers and the canonical review split."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest

from shoplm.data import canonical_reviews_dir

WriteFile = Callable[[str, Iterable[object]], Path]


@pytest.fixture
def write_jsonl(tmp_path: Path) -> WriteFile:
    """Write rows to tmp_path/NAME: dicts as JSON objects, str lines verbatim, bytes raw."""

    def write(name: str, rows: Iterable[object]) -> Path:
        path = tmp_path / name
        with path.open("wb") as handle:
            for row in rows:
                if isinstance(row, bytes):
                    handle.write(row + b"\n")
                elif isinstance(row, str):
                    handle.write(row.encode() + b"\n")
                else:
                    handle.write(json.dumps(row, ensure_ascii=False).encode() + b"\n")
        return path

    return write


@pytest.fixture
def write_csv(tmp_path: Path) -> WriteFile:
    """Write rows (lists of fields, the first one the header) to tmp_path/NAME as CSV."""

    def write(name: str, rows: Iterable[object]) -> Path:
        path = tmp_path / name
        with path.open("w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle)
            for row in rows:
                writer.writerow(row)  # type: ignore[arg-type]
        return path

    return write


@pytest.fixture(scope="session")
def canonical_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The canonical review split, prepared once per test session into a private cache."""
    return canonical_reviews_dir(cache_dir=tmp_path_factory.mktemp("shoplm-cache"))
