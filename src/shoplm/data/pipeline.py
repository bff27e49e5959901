"""The preparation pipeline: records in, cleaned, deduplicated, split rows and a card out.

Two passes, both streaming:

1. Every record of every source is cleaned; exact duplicates are dropped on the spot and
   the survivors are spooled to a temporary JSONL file next to the output. Memory holds one
   16-byte key per distinct text, not the texts.
2. The spool is read back: texts that turned out to carry conflicting labels are dropped,
   near duplicates are dropped (first kept), and each row is appended to its split.

Rows keep their input order within each split, and the first occurrence of a text wins, so
appending data to the inputs never changes which existing rows are kept or where they go
(unless the new rows give an existing text a second label, which drops it as conflicting).
"""

from __future__ import annotations

import codecs
import dataclasses
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from shoplm.data.card import CARD_JSON, DatasetCard
from shoplm.data.clean import clean_text
from shoplm.data.dedup import ExactDeduplicator, NearDuplicateFilter, text_digest
from shoplm.data.errors import SettingsError
from shoplm.data.labels import build_label_map, label_key
from shoplm.data.output import SplitWriter, make_output_dir, split_filename
from shoplm.data.rows import Dropped, DropReason, Record
from shoplm.data.split import DEFAULT_FRACTIONS, SPLITS, SplitAssigner, SplitFractions, check_fractions
from shoplm.textproc.config import NormalizeConfig

# Locations kept per drop reason for the card: enough to find the problem, not a log.
DROP_EXAMPLES = 5
PROGRESS_EVERY = 2000
ProgressCallback = Callable[[str, int], None]


@dataclass(frozen=True)
class PrepareSettings:
    """How records become rows; every field is recorded in the dataset card."""

    text_column: str = "text"
    label_column: str | None = None
    format: str | None = None  # None: from each file's extension
    encoding: str = "utf-8"  # of CSV, TSV, JSONL and text inputs; Parquet stores UTF-8 itself
    label_from_rating: bool = False
    max_chars: int = 4096
    strip_html: bool = True
    near_dup: bool = True
    near_dup_threshold: float = 0.9
    near_dup_num_perm: int = 128
    near_dup_shingle_size: int = 4
    near_dup_min_chars: int = 20
    split: SplitFractions = DEFAULT_FRACTIONS
    normalize: NormalizeConfig = field(default_factory=NormalizeConfig)

    def __post_init__(self) -> None:
        check_fractions(self.split)
        if self.max_chars < 1:
            raise SettingsError(f"max_chars must be at least 1, got {self.max_chars}")
        if not 0 < self.near_dup_threshold <= 1:
            raise SettingsError(f"near_dup_threshold must be in (0, 1], got {self.near_dup_threshold}")
        if self.near_dup_shingle_size < 1 or self.near_dup_num_perm < 2:
            raise SettingsError("near_dup_shingle_size must be >= 1 and near_dup_num_perm >= 2")
        try:
            codecs.lookup(self.encoding)
        except LookupError:
            raise SettingsError(f"unknown encoding {self.encoding!r} (e.g. utf-8, gb18030, big5, utf-16)") from None
        if self.label_column is not None and self.label_column == self.text_column:
            raise SettingsError(
                f"the text and the label column are both {self.text_column!r}; a label needs a column of its own"
            )
        if self.label_from_rating and self.label_column is None:
            raise SettingsError("label_from_rating needs a label column (--label-column)")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready settings for the card."""
        data = {item.name: getattr(self, item.name) for item in dataclasses.fields(self)}
        data["split"] = dict(zip(SPLITS, self.split, strict=True))
        data["normalize"] = self.normalize.model_dump()
        return data


@dataclass(frozen=True)
class RowSource:
    """One input of the pipeline: a name for the card and a way to stream its records."""

    name: str
    format: str
    records: Callable[[], Iterator[Record]]
    bytes: int | None = None


class _DropTally:
    def __init__(self) -> None:
        self.counts = dict.fromkeys((reason.value for reason in DropReason), 0)
        self.examples: dict[str, list[str]] = {}

    def add(self, reason: DropReason, where: str) -> None:
        self.counts[reason.value] += 1
        examples = self.examples.setdefault(reason.value, [])
        if len(examples) < DROP_EXAMPLES:
            examples.append(where)


def run_pipeline(
    sources: Sequence[RowSource],
    out_dir: Path,
    settings: PrepareSettings,
    *,
    corpus: str,
    description: str,
    labeled: bool,
    label_names: Sequence[str] | None = None,
    extra: dict[str, Any] | None = None,
    progress: ProgressCallback | None = None,
) -> DatasetCard:
    """Prepare `sources` into `out_dir` (split JSONL files and the card) and return the card.

    With `labeled`, rows carry an integer ``label`` (see `shoplm.data.labels` for the rule);
    `label_names` fixes the names of ids 0..n-1 when the caller knows them.
    """
    make_output_dir(out_dir)
    # The card marks a complete output (see prepare.is_complete): an older one must not vouch
    # for splits that this run is about to replace.
    (out_dir / CARD_JSON).unlink(missing_ok=True)
    tally = _DropTally()
    exact = ExactDeduplicator()
    label_keys: set[str] = set()
    inputs: list[dict[str, Any]] = []
    records_read = 0
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".prepare-") as scratch:
        spool_path = Path(scratch) / "rows.jsonl"
        with spool_path.open("wb") as spool:
            for source in sources:
                count = 0
                for record in source.records():
                    count += 1
                    records_read += 1
                    if progress is not None and records_read % PROGRESS_EVERY == 0:
                        progress("read", records_read)
                    kept = _first_pass(record, settings, labeled, exact, tally)
                    if kept is not None:
                        if kept[1] is not None:
                            label_keys.add(kept[1])
                        spool.write(orjson.dumps(kept) + b"\n")
                inputs.append({"name": source.name, "format": source.format, "bytes": source.bytes, "records": count})
        label_map = build_label_map(label_keys)
        names = list(label_names) if label_names is not None else label_map.names
        near = (
            NearDuplicateFilter(
                settings.near_dup_threshold,
                settings.near_dup_num_perm,
                settings.near_dup_shingle_size,
                settings.near_dup_min_chars,
            )
            if settings.near_dup
            else None
        )
        assigner = SplitAssigner(settings.split)
        kept_rows = 0
        with SplitWriter(out_dir) as writer, spool_path.open("rb") as spool_in:
            for line in spool_in:
                text, key, where = orjson.loads(line)
                digest = text_digest(text)
                if exact.is_conflicting(digest):
                    tally.add(DropReason.CONFLICTING_LABEL, where)
                    continue
                if near is not None and near.is_duplicate(text):
                    tally.add(DropReason.NEAR_DUPLICATE, where)
                    continue
                writer.write(assigner.assign(digest), text, None if key is None else label_map.to_id(key))
                kept_rows += 1
                if progress is not None and kept_rows % PROGRESS_EVERY == 0:
                    progress("write", kept_rows)
            content_hash = writer.finish()
    card = DatasetCard(
        corpus=corpus,
        description=description,
        inputs=inputs,
        settings=settings.to_dict(),
        rows_read=records_read,
        rows_kept=kept_rows,
        splits=writer.stats,
        drops=tally.counts,
        drop_examples=tally.examples,
        content_hash=content_hash,
        files={split: split_filename(split) for split in SPLITS},
        label_names=names if labeled else None,
        extra=extra or {},
    )
    card.write(out_dir)
    return card


def _first_pass(
    record: Record, settings: PrepareSettings, labeled: bool, exact: ExactDeduplicator, tally: _DropTally
) -> tuple[str, str | None, str] | None:
    """Clean one record and check it against the texts seen so far: the spool entry, or None if dropped."""
    if isinstance(record, Dropped):
        tally.add(record.reason, record.where)
        return None
    if not isinstance(record.text, str):
        tally.add(DropReason.BAD_TEXT_TYPE if record.text is not None else DropReason.EMPTY, record.where)
        return None
    key: str | None = None
    if labeled:
        read = label_key(record.label, settings.label_from_rating)
        if isinstance(read, DropReason):
            tally.add(read, record.where)
            return None
        key = read
    text, reason = clean_text(record.text, settings.normalize, settings.max_chars, settings.strip_html)
    if reason is not None:
        tally.add(reason, record.where)
        return None
    reason = exact.check(text_digest(text), key)
    if reason is not None:
        tally.add(reason, record.where)
        return None
    return text, key, record.where
