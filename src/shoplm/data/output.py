"""Split files: written incrementally as JSONL, read back as a stream or as Arrow datasets.

Each row is one canonical JSON object per line (keys sorted, UTF-8, no spaces), so the
bytes of a split depend on its rows alone and their sha256 is a stable content hash.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any

import orjson

from shoplm.data.card import CARD_JSON, DatasetCard, SplitStats
from shoplm.data.errors import DataPrepError
from shoplm.data.split import SPLITS

if TYPE_CHECKING:
    from datasets import DatasetDict

_PARTIAL = ".partial"


def make_output_dir(directory: Path) -> None:
    """Create `directory` (and parents); DataPrepError when a file is in the way."""
    if directory.exists() and not directory.is_dir():
        raise DataPrepError(f"output {directory.name} exists and is not a directory")
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DataPrepError(f"cannot create the output directory {directory}: {error.strerror or error}") from None


def split_filename(split: str) -> str:
    """The file name of a split, e.g. ``train.jsonl``."""
    return f"{split}.jsonl"


def encode_row(row: dict[str, Any]) -> bytes:
    """The canonical serialization of one row: sorted keys, UTF-8, a newline."""
    return orjson.dumps(row, option=orjson.OPT_SORT_KEYS) + b"\n"


class SplitWriter:
    """Appends rows to ``<split>.jsonl.partial`` files and renames them when all is written.

    A run that fails halfway leaves only ``.partial`` files, never a split that looks complete.
    """

    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self._handles: dict[str, IO[bytes]] = {}
        self._hashes = {split: hashlib.sha256() for split in SPLITS}
        self.stats = {split: SplitStats() for split in SPLITS}
        for split in SPLITS:
            self._handles[split] = (directory / (split_filename(split) + _PARTIAL)).open("wb")

    def __enter__(self) -> SplitWriter:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        for handle in self._handles.values():
            handle.close()
        if kind is not None:
            for split in SPLITS:
                (self._directory / (split_filename(split) + _PARTIAL)).unlink(missing_ok=True)

    def write(self, split: str, text: str, label: int | None) -> None:
        """Append one row (with a ``label`` field when `label` is not None) to `split`."""
        row: dict[str, Any] = {"text": text} if label is None else {"text": text, "label": label}
        data = encode_row(row)
        self._handles[split].write(data)
        self._hashes[split].update(data)
        self.stats[split].add(text, label)

    def finish(self) -> str:
        """Close and publish the split files; return the content hash of all splits together."""
        combined = hashlib.sha256()
        for split in SPLITS:
            self._handles[split].close()
            digest = self._hashes[split].hexdigest()
            self.stats[split].sha256 = digest
            combined.update(f"{split}:{digest}\n".encode())
            partial = self._directory / (split_filename(split) + _PARTIAL)
            os.replace(partial, self._directory / split_filename(split))
        return f"sha256:{combined.hexdigest()}"


def read_jsonl_split(directory: str | Path, split: str) -> Iterator[dict[str, Any]]:
    """Stream the rows of one split of a prepared dataset directory, one dict per row.

    Raises DataPrepError for an unknown split name and FileNotFoundError when the directory
    holds no such split file.
    """
    if split not in SPLITS:
        raise DataPrepError(f"unknown split {split!r}; choose one of: {', '.join(SPLITS)}")
    path = Path(directory) / split_filename(split)
    with path.open("rb") as handle:
        for line in handle:
            yield orjson.loads(line)


def load_splits(directory: str | Path, cache_dir: str | Path | None = None) -> DatasetDict:
    """The prepared splits as a `datasets.DatasetDict` (Arrow, memory-mapped, larger than RAM is fine).

    Labels become a `ClassLabel` when the card names them (e.g. ``negative``/``positive``).
    `cache_dir` is where `datasets` keeps the Arrow files (its default cache when None);
    the cache is keyed on the files' paths and modification times, so re-preparing rebuilds it.
    """
    from datasets import ClassLabel, Features, Value, load_dataset

    root = Path(directory)
    if not (root / CARD_JSON).is_file():
        raise DataPrepError(f"{root.name}: no {CARD_JSON}; not a prepared dataset directory")
    card = DatasetCard.load(root)
    columns: dict[str, Any] = {"text": Value("string")}
    if card.labels:
        columns["label"] = ClassLabel(names=card.label_names) if card.label_names else Value("int64")
    data_files = {split: str(root / split_filename(split)) for split in SPLITS if card.splits[split].rows}
    return load_dataset(
        "json",
        data_files=data_files,
        features=Features(columns),
        cache_dir=None if cache_dir is None else str(cache_dir),
    )
