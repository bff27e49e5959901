"""The pipeline end to end on the user's files: drops by reason, labels, cards, hashes, stable splits."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest

from shoplm.data import (
    SPLITS,
    DatasetCard,
    DropReason,
    PrepareSettings,
    SettingsError,
    load_splits,
    prepare_files,
    read_jsonl_split,
)
from shoplm.textproc.config import NormalizeConfig
from shoplm.textproc.normalize import normalize_text

WriteFile = Callable[[str, Iterable[object]], Path]

LONG_REVIEW = (
    "这款蓝牙耳机音质清晰，低音浑厚，佩戴舒适，续航时间也很长，通勤路上降噪效果明显，"
    "充电盒小巧便携，连接稳定从不断连，客服回复及时，物流很快第二天就到了，整体非常满意，会推荐给朋友。"
)


def split_of(directory: Path) -> dict[str, str]:
    return {row["text"]: split for split in SPLITS for row in read_jsonl_split(directory, split)}


def every_reason_inputs(tmp_path: Path, write_jsonl: WriteFile) -> list[Path]:
    """Two files that between them trigger every drop reason once or more (with --label-from-rating)."""
    csv_path = tmp_path / "shop.csv"
    csv_path.write_bytes(
        b"text,rating\n"
        b"great value,5\n"
        b"one,too,many\n"  # bad_csv_row
        b"caf\xe9 au lait,4\n"  # bad_encoding
        b"so-so,3\n"  # neutral_rating
        b"rated nine,9\n"  # bad_label
        b"no rating,\n"  # missing_label
    )
    jsonl_path = write_jsonl(
        "shop.jsonl",
        [
            {"text": "great \u3000 value", "rating": 4},  # exact_duplicate after normalization (same label)
            "{broken",  # malformed_json
            {"rating": 5},  # missing_text_column
            {"text": ["a list"], "rating": 5},  # bad_text_type
            {"text": " \u200b ", "rating": 5},  # empty
            {"text": "<p><br/></p>", "rating": 1},  # html_only
            {"text": "x" * 300, "rating": 5},  # too_long (max_chars=200)
            {"text": "arrived broken", "rating": 1},
            {"text": "arrived  broken", "rating": 5},  # conflicting_label: both rows go
            {"text": LONG_REVIEW, "rating": 5},
            {"text": LONG_REVIEW + "!!", "rating": 5},  # near_duplicate
            {"text": "<b>Fast</b> delivery &amp; good packaging", "rating": 5},
            {"text": "Ｆｕｌｌ－ｗｉｄｔｈ text", "rating": 2},
        ],
    )
    return [csv_path, jsonl_path]


def test_every_drop_reason_is_counted(tmp_path: Path, write_jsonl: WriteFile) -> None:
    inputs = every_reason_inputs(tmp_path, write_jsonl)
    settings = PrepareSettings(label_column="rating", label_from_rating=True, max_chars=200)

    card = prepare_files(inputs, tmp_path / "out", settings)

    expected = dict.fromkeys((reason.value for reason in DropReason), 1)
    expected["conflicting_label"] = 2
    assert card.drops == expected
    assert card.rows_read == 19 == card.rows_kept + card.rows_dropped
    kept = {row["text"]: row["label"] for split in SPLITS for row in read_jsonl_split(tmp_path / "out", split)}
    assert kept == {
        "great value": 1,
        normalize_text(LONG_REVIEW, NormalizeConfig()): 1,  # NFKC: full-width commas become ASCII
        "Fast delivery & good packaging": 1,
        "Full-width text": 0,
    }
    assert card.drop_examples["conflicting_label"] == ["shop.jsonl:9", "shop.jsonl:8"]


def test_near_duplicates_stay_with_no_near_dup(tmp_path: Path, write_jsonl: WriteFile) -> None:
    path = write_jsonl("a.jsonl", [{"text": LONG_REVIEW}, {"text": LONG_REVIEW + "!!"}, {"text": LONG_REVIEW[::-1]}])

    with_near = prepare_files([path], tmp_path / "on")
    without = prepare_files([path], tmp_path / "off", PrepareSettings(near_dup=False))

    assert with_near.drops["near_duplicate"] == 1 and with_near.rows_kept == 2
    assert without.drops["near_duplicate"] == 0 and without.rows_kept == 3


def test_short_texts_only_get_exact_dedup(tmp_path: Path, write_jsonl: WriteFile) -> None:
    path = write_jsonl("short.jsonl", [{"text": "很好"}, {"text": "很好!"}, {"text": "很好"}])
    card = prepare_files([path], tmp_path / "out", PrepareSettings(near_dup_threshold=0.5))
    assert card.rows_kept == 2
    assert card.drops["exact_duplicate"] == 1 and card.drops["near_duplicate"] == 0


def test_string_labels_get_sorted_ids_and_names(tmp_path: Path, write_jsonl: WriteFile) -> None:
    path = write_jsonl(
        "labels.jsonl",
        [{"text": f"review {n}", "sentiment": ["pos", "neg", "neutral"][n % 3]} for n in range(30)],
    )
    card = prepare_files([path], tmp_path / "out", PrepareSettings(label_column="sentiment"))
    assert card.label_names == ["neg", "neutral", "pos"]
    labels = {row["text"]: row["label"] for split in SPLITS for row in read_jsonl_split(tmp_path / "out", split)}
    assert labels["review 0"] == 2 and labels["review 1"] == 0 and labels["review 2"] == 1
    assert card.labels == {"0": 10, "1": 10, "2": 10}


def test_integer_labels_pass_through(tmp_path: Path, write_jsonl: WriteFile) -> None:
    path = write_jsonl("ints.jsonl", [{"text": "a", "y": 3}, {"text": "b", "y": "7"}, {"text": "c", "y": 2.0}])
    card = prepare_files([path], tmp_path / "out", PrepareSettings(label_column="y"))
    labels = {row["text"]: row["label"] for split in SPLITS for row in read_jsonl_split(tmp_path / "out", split)}
    assert labels == {"a": 3, "b": 7, "c": 2}
    assert card.label_names is None


def test_same_input_gives_same_hash_and_identical_card(tmp_path: Path, write_jsonl: WriteFile) -> None:
    inputs = every_reason_inputs(tmp_path, write_jsonl)
    settings = PrepareSettings(label_column="rating", label_from_rating=True, max_chars=200)

    first = prepare_files(inputs, tmp_path / "one", settings)
    second = prepare_files(inputs, tmp_path / "two", settings)

    assert first.content_hash == second.content_hash
    assert first.content_hash.startswith("sha256:")
    for name in ("dataset_card.json", "dataset_card.md", "train.jsonl"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()
    assert not [path.name for path in (tmp_path / "one").iterdir() if path.name.startswith(".")]


def test_different_rows_give_a_different_hash(tmp_path: Path, write_jsonl: WriteFile) -> None:
    a = prepare_files([write_jsonl("a.jsonl", [{"text": "one"}, {"text": "two"}])], tmp_path / "a")
    b = prepare_files([write_jsonl("b.jsonl", [{"text": "one"}, {"text": "three"}])], tmp_path / "b")
    assert a.content_hash != b.content_hash


def test_adding_rows_never_moves_existing_rows(tmp_path: Path, write_jsonl: WriteFile) -> None:
    old_rows = [{"text": f"product review number {n}"} for n in range(300)]
    new_rows = [{"text": f"another shopper wrote {n}"} for n in range(300)]
    # (the numbered texts are near duplicates of each other, which is not what this test is about)
    settings = PrepareSettings(near_dup=False)
    before = prepare_files([write_jsonl("old.jsonl", old_rows)], tmp_path / "before", settings)
    after = prepare_files(
        [write_jsonl("old2.jsonl", old_rows), write_jsonl("new.jsonl", new_rows)], tmp_path / "after", settings
    )

    assert before.rows_kept == 300 and after.rows_kept == 600
    old_splits = split_of(tmp_path / "before")
    new_splits = split_of(tmp_path / "after")
    assert all(new_splits[text] == split for text, split in old_splits.items())
    # new data appended before or after the old gives the old rows the same splits
    reordered = prepare_files([tmp_path / "new.jsonl", tmp_path / "old2.jsonl"], tmp_path / "reordered", settings)
    assert reordered.rows_kept == 600
    assert split_of(tmp_path / "reordered") == new_splits


def test_split_fractions_are_honoured(tmp_path: Path, write_jsonl: WriteFile) -> None:
    rows = [{"text": f"row {n}"} for n in range(2000)]
    card = prepare_files(
        [write_jsonl("rows.jsonl", rows)], tmp_path / "out", PrepareSettings(near_dup=False, split=(0.5, 0.5, 0.0))
    )
    assert card.splits["test"].rows == 0
    assert 900 < card.splits["train"].rows < 1100
    assert (tmp_path / "out" / "test.jsonl").read_bytes() == b""


def test_card_records_inputs_settings_and_histograms(
    tmp_path: Path, write_jsonl: WriteFile, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    write_jsonl("in.jsonl", [{"text": "short"}, {"text": "y" * 40}, {"text": "z" * 5000}])

    card = prepare_files([Path("in.jsonl"), tmp_path / "in.jsonl"], Path("out"), PrepareSettings(near_dup=False))

    data = json.loads((tmp_path / "out" / "dataset_card.json").read_text(encoding="utf-8"))
    size = (tmp_path / "in.jsonl").stat().st_size
    assert data["inputs"][0] == {"name": "in.jsonl", "format": "jsonl", "bytes": size, "records": 3}
    assert data["inputs"][1]["name"] == "in.jsonl"  # absolute paths are not written
    assert str(tmp_path) not in (tmp_path / "out" / "dataset_card.json").read_text(encoding="utf-8")
    assert data["settings"]["max_chars"] == 4096
    assert data["settings"]["split"] == {"train": 0.8, "validation": 0.1, "test": 0.1}
    assert data["drops"]["too_long"] == 2 and data["drops"]["exact_duplicate"] == 2
    histogram = {
        label: sum(data["splits"][split]["length_histogram"][label] for split in SPLITS) for label in ("1-15", "32-63")
    }
    assert histogram == {"1-15": 1, "32-63": 1}
    assert DatasetCard.load(tmp_path / "out") == card
    markdown = (tmp_path / "out" / "dataset_card.md").read_text(encoding="utf-8")
    assert "| too_long | 2 | `in.jsonl:3`, `in.jsonl:3` |" in markdown and card.content_hash in markdown


def test_bad_settings_are_refused() -> None:
    with pytest.raises(SettingsError, match="sum to 1"):
        PrepareSettings(split=(0.8, 0.1, 0.2))
    with pytest.raises(SettingsError, match="label column"):
        PrepareSettings(label_from_rating=True)
    with pytest.raises(SettingsError, match="max_chars"):
        PrepareSettings(max_chars=0)


def test_splits_load_as_arrow_datasets(tmp_path: Path, write_jsonl: WriteFile) -> None:
    rows = [{"text": f"review {n}", "stars": 5 if n % 2 else 1} for n in range(50)]
    prepare_files(
        [write_jsonl("r.jsonl", rows)],
        tmp_path / "out",
        PrepareSettings(label_column="stars", label_from_rating=True),
    )

    datasets = load_splits(tmp_path / "out", cache_dir=tmp_path / "hf-cache")

    assert sum(len(dataset) for dataset in datasets.values()) == 50
    assert datasets["train"].features["label"].names == ["negative", "positive"]
    first = next(read_jsonl_split(tmp_path / "out", "train"))
    assert datasets["train"][0] == first
