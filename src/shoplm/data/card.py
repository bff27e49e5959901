"""The dataset card: what went in, what came out, what was dropped and why (JSON + Markdown).

The card holds no timestamps and no absolute paths, so preparing the same inputs with the
same settings writes byte-identical cards; `content_hash` identifies the rows themselves.
"""

from __future__ import annotations

import bisect
import itertools
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson

from shoplm import __version__
from shoplm.data.rows import DropReason
from shoplm.data.split import SPLITS

CARD_JSON = "dataset_card.json"
CARD_MARKDOWN = "dataset_card.md"
CARD_SCHEMA = "shoplm.dataset_card/1"
# Lower edges of the character-length bins; the last bin is open-ended. Fixed, so histograms
# of different datasets compare bin by bin.
LENGTH_BIN_EDGES = (1, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)
LENGTH_BIN_LABELS = (
    *(f"{low}-{high - 1}" for low, high in itertools.pairwise(LENGTH_BIN_EDGES)),
    f"{LENGTH_BIN_EDGES[-1]}+",
)


@dataclass
class SplitStats:
    """Counts of one split: rows, rows per label, characters and the length histogram."""

    rows: int = 0
    labels: dict[str, int] = field(default_factory=dict)
    chars: int = 0
    min_chars: int | None = None
    max_chars: int | None = None
    length_histogram: dict[str, int] = field(default_factory=lambda: dict.fromkeys(LENGTH_BIN_LABELS, 0))
    sha256: str = ""

    def add(self, text: str, label: int | None) -> None:
        """Count one written row."""
        length = len(text)
        self.rows += 1
        self.chars += length
        self.min_chars = length if self.min_chars is None else min(self.min_chars, length)
        self.max_chars = length if self.max_chars is None else max(self.max_chars, length)
        bin_index = max(bisect.bisect_right(LENGTH_BIN_EDGES, length) - 1, 0)
        self.length_histogram[LENGTH_BIN_LABELS[bin_index]] += 1
        if label is not None:
            key = str(label)
            self.labels[key] = self.labels.get(key, 0) + 1


@dataclass
class DatasetCard:
    """Everything worth knowing about one prepared dataset; written next to its splits."""

    corpus: str
    description: str
    inputs: list[dict[str, Any]]
    settings: dict[str, Any]
    rows_read: int
    rows_kept: int
    splits: dict[str, SplitStats]
    drops: dict[str, int]
    drop_examples: dict[str, list[str]]
    content_hash: str
    files: dict[str, str]
    label_names: list[str] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    schema: str = CARD_SCHEMA
    shoplm_version: str = __version__

    @property
    def labels(self) -> dict[str, int]:
        """Rows per label over all splits (empty for text-only data)."""
        total: Counter[str] = Counter()
        for stats in self.splits.values():
            total.update(stats.labels)
        return dict(sorted(total.items(), key=lambda item: _label_order(item[0])))

    @property
    def rows_dropped(self) -> int:
        """Rows read but not written, over all reasons."""
        return sum(self.drops.values())

    def to_dict(self) -> dict[str, Any]:
        """The card as plain JSON-ready data."""
        data = asdict(self)
        data["labels"] = self.labels
        data["rows_dropped"] = self.rows_dropped
        return data

    def write(self, directory: Path) -> Path:
        """Write ``dataset_card.md`` and then ``dataset_card.json`` (the mark of a complete output)."""
        (directory / CARD_MARKDOWN).write_text(self.to_markdown(), encoding="utf-8")
        path = directory / CARD_JSON
        path.write_bytes(orjson.dumps(self.to_dict(), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n")
        return path

    @classmethod
    def load(cls, directory: Path) -> DatasetCard:
        """Read the card of a prepared dataset directory (FileNotFoundError when there is none)."""
        data = orjson.loads((Path(directory) / CARD_JSON).read_bytes())
        data.pop("labels", None)
        data.pop("rows_dropped", None)
        data["splits"] = {name: SplitStats(**stats) for name, stats in data["splits"].items()}
        return cls(**data)

    def to_markdown(self) -> str:
        """A human-readable rendering of the card."""
        lines = [f"# Dataset card: {self.corpus}", "", self.description, ""]
        lines += [
            f"- rows read: {self.rows_read}, kept: {self.rows_kept}, dropped: {self.rows_dropped}",
            f"- content hash: `{self.content_hash}`",
            f"- prepared by shoplm {self.shoplm_version}",
            "",
            "## Splits",
            "",
        ]
        label_keys = list(self.labels)
        header = ["split", "file", "rows", *(f"label {self.label_title(key)}" for key in label_keys), "mean chars"]
        lines += _table_header(header)
        for name in SPLITS:
            stats = self.splits[name]
            mean = f"{stats.chars / stats.rows:.1f}" if stats.rows else "-"
            cells = [name, f"`{self.files[name]}`", str(stats.rows), *(str(stats.labels.get(k, 0)) for k in label_keys)]
            lines.append("| " + " | ".join([*cells, mean]) + " |")
        lines += ["", "## Length histogram (characters)", ""]
        lines += _table_header(["chars", *SPLITS])
        for label in LENGTH_BIN_LABELS:
            counts = [str(self.splits[name].length_histogram.get(label, 0)) for name in SPLITS]
            lines.append("| " + " | ".join([label, *counts]) + " |")
        lines += ["", "## Dropped rows", ""]
        lines += _table_header(["reason", "rows", "first examples"])
        for reason in DropReason:
            examples = ", ".join(f"`{where}`" for where in self.drop_examples.get(reason.value, []))
            lines.append(f"| {reason.value} | {self.drops.get(reason.value, 0)} | {examples} |")
        lines += ["", "## Inputs", ""]
        lines += _table_header(["input", "format", "bytes", "records"])
        for item in self.inputs:
            size = "-" if item.get("bytes") is None else str(item["bytes"])
            lines.append(f"| `{item['name']}` | {item['format']} | {size} | {item['records']} |")
        lines += ["", "## Settings", "", "```json", _pretty(self.settings), "```", ""]
        if self.extra:
            lines += ["## More", "", "```json", _pretty(self.extra), "```", ""]
        return "\n".join(lines)

    def label_title(self, key: str) -> str:
        """``0 (negative)`` when the label has a name, else the key itself."""
        if self.label_names is not None and key.isdigit() and int(key) < len(self.label_names):
            return f"{key} ({self.label_names[int(key)]})"
        return key


def _label_order(key: str) -> tuple[int, str]:
    try:
        return int(key), ""
    except ValueError:
        return 0, key


def _table_header(columns: list[str]) -> list[str]:
    return ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]


def _pretty(data: dict[str, Any]) -> str:
    return orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode()
