"""Input formats: every format read from real files, bad rows counted, bad files and columns refused."""

from __future__ import annotations

import gzip
from collections.abc import Callable, Iterable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from shoplm.data import ColumnError, InputFileError, PrepareSettings, SettingsError, prepare_files, read_jsonl_split
from shoplm.data.readers import COLUMN_PROBE_ROWS, open_input, read_records
from shoplm.data.rows import Dropped, DropReason, RawRow

WriteFile = Callable[[str, Iterable[object]], Path]


def all_rows(directory: Path) -> list[dict[str, object]]:
    return [row for split in ("train", "validation", "test") for row in read_jsonl_split(directory, split)]


def test_each_format_is_read_and_formats_mix(tmp_path: Path, write_jsonl: WriteFile, write_csv: WriteFile) -> None:
    # given the same kind of rows in CSV, TSV, JSONL, Parquet and gzipped JSONL files
    csv_file = write_csv("a.csv", [["id", "text", "label"], ["1", "csv row one", "1"], ["2", "csv row two", "0"]])
    tsv_file = tmp_path / "b.tsv"
    tsv_file.write_text("text\tlabel\ntsv row\t1\n", encoding="utf-8")
    jsonl_file = write_jsonl("c.jsonl", [{"text": "jsonl row", "label": 0}])
    parquet_file = tmp_path / "d.parquet"
    pq.write_table(pa.table({"text": ["parquet row", None], "label": [1, 1]}), parquet_file)
    gz_file = tmp_path / "e.jsonl.gz"
    gz_file.write_bytes(gzip.compress(b'{"text": "gzip row", "label": 1}\n'))

    # when they are prepared together with a label column
    card = prepare_files(
        [csv_file, tsv_file, jsonl_file, parquet_file, gz_file], tmp_path / "out", PrepareSettings(label_column="label")
    )

    # then every row arrives with an integer label, the null Parquet text is counted as empty
    rows = {row["text"]: row["label"] for row in all_rows(tmp_path / "out")}
    assert rows == {"csv row one": 1, "csv row two": 0, "tsv row": 1, "jsonl row": 0, "parquet row": 1, "gzip row": 1}
    assert card.drops["empty"] == 1
    assert [item["format"] for item in card.inputs] == ["csv", "tsv", "jsonl", "parquet", "jsonl.gz"]
    assert [item["records"] for item in card.inputs] == [2, 1, 1, 2, 1]


def test_plain_text_lines_are_rows_and_blank_lines_are_counted(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("first line\n\n  \nsecond line\n", encoding="utf-8")

    card = prepare_files([path], tmp_path / "out")

    assert sorted(row["text"] for row in all_rows(tmp_path / "out")) == ["first line", "second line"]
    assert all("label" not in row for row in all_rows(tmp_path / "out"))
    assert card.drops["empty"] == 2
    assert card.drop_examples["empty"] == ["notes.txt:2", "notes.txt:3"]


def test_corrupt_jsonl_lines_are_counted_with_their_line_numbers(
    tmp_path: Path, write_jsonl: WriteFile, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    path = write_jsonl(
        "mixed.jsonl",
        [
            {"text": "good one"},
            "{not json",
            "[1, 2]",
            b'{"text": "caf\xe9"}',
            {"other": "x"},
            {"text": 7},
            {"text": "ok"},
        ],
    )

    card = prepare_files([Path("mixed.jsonl")], Path("out"))

    assert sorted(row["text"] for row in all_rows(tmp_path / "out")) == ["good one", "ok"]
    assert card.drops["malformed_json"] == 2
    assert card.drop_examples["malformed_json"] == ["mixed.jsonl:2", "mixed.jsonl:3"]
    assert card.drops["bad_encoding"] == 1
    assert card.drop_examples["bad_encoding"] == ["mixed.jsonl:4"]
    assert card.drops["missing_text_column"] == 1
    assert card.drops["bad_text_type"] == 1
    assert card.rows_read == 7 == card.rows_kept + card.rows_dropped
    assert path.exists()


def test_bad_csv_rows_are_counted_not_fatal(tmp_path: Path) -> None:
    path = tmp_path / "reviews.csv"
    path.write_bytes(
        b"text,rating\n"
        b"fine row,5\n"
        b"too,many,fields\n"
        b"short\n"
        b'"quoted, with comma",4\n'
        b"bad \xff bytes,5\n"
        b'"multi\nline",1\n'
    )

    card = prepare_files([path], tmp_path / "out", PrepareSettings(label_column="rating", label_from_rating=True))

    rows = {row["text"]: row["label"] for row in all_rows(tmp_path / "out")}
    assert rows == {"fine row": 1, "quoted, with comma": 1, "multi line": 0}
    assert card.drops["bad_csv_row"] == 2
    assert card.drop_examples["bad_csv_row"] == ["reviews.csv:3", "reviews.csv:4"]
    assert card.drops["bad_encoding"] == 1
    assert card.label_names == ["negative", "positive"]


def test_missing_file_is_an_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match=r"nothere\.csv: no such file"):
        prepare_files([tmp_path / "nothere.csv"], tmp_path / "out")


def test_unknown_extension_is_an_error_listing_the_known_ones(tmp_path: Path) -> None:
    path = tmp_path / "data.xlsx"
    path.write_bytes(b"PK")
    with pytest.raises(InputFileError, match=r"data\.xlsx: unknown file extension '\.xlsx'.*\.csv.*--format"):
        open_input(path)
    # an explicit format reads it anyway
    assert open_input(path, "text").format == "text"


def test_wrong_csv_column_lists_the_columns(tmp_path: Path, write_csv: WriteFile) -> None:
    path = write_csv("items.csv", [["title", "body"], ["a", "b"]])
    with pytest.raises(ColumnError) as caught:
        prepare_files([path], tmp_path / "out", PrepareSettings(text_column="review"))
    assert str(caught.value) == "items.csv: has no text column 'review'; columns found: 'title', 'body'"
    assert caught.value.available == ["title", "body"]


def test_a_csv_header_naming_the_text_column_twice_is_refused(tmp_path: Path, write_csv: WriteFile) -> None:
    path = write_csv("twice.csv", [["text", "label", "text"], ["first", "1", "second"]])
    expected = r"twice\.csv: has 2 columns named 'text', so the text column is ambiguous; columns found: 'text', "
    with pytest.raises(ColumnError, match=expected):
        prepare_files([path], tmp_path / "out", PrepareSettings(label_column="label"))


def test_the_label_cannot_be_the_text_column() -> None:
    with pytest.raises(SettingsError, match="the text and the label column are both 'review'"):
        PrepareSettings(text_column="review", label_column="review")


def test_wrong_label_column_in_parquet(tmp_path: Path) -> None:
    path = tmp_path / "items.parquet"
    pq.write_table(pa.table({"text": ["a"], "stars": [5]}), path)
    expected = r"items\.parquet: has no label column 'rating'; columns found: 'text', 'stars'"
    with pytest.raises(ColumnError, match=expected):
        prepare_files([path], tmp_path / "out", PrepareSettings(label_column="rating"))


def test_parquet_text_column_must_hold_strings(tmp_path: Path) -> None:
    path = tmp_path / "numbers.parquet"
    pq.write_table(pa.table({"text": [1, 2]}), path)
    with pytest.raises(ColumnError, match="holds int64, not strings"):
        prepare_files([path], tmp_path / "out")


@pytest.mark.parametrize(
    "strings",
    [
        pa.array(["好看", "难看", "好看的"], pa.large_string()),
        pa.array(["好看", "难看", "好看的"], pa.string_view()),
        pa.array(["好看", "难看", "好看的"]).dictionary_encode(),  # how pandas writes a category column
    ],
    ids=["large_string", "string_view", "dictionary"],
)
def test_parquet_text_in_any_string_layout_is_read(tmp_path: Path, strings: pa.Array) -> None:
    path = tmp_path / "items.parquet"
    labels = pa.array(["pos", "neg", "pos"]).dictionary_encode()
    pq.write_table(pa.table({"text": strings, "label": labels}), path)
    card = prepare_files([path], tmp_path / "out", PrepareSettings(label_column="label"))
    names = card.label_names
    assert names is not None
    assert {str(row["text"]): names[int(str(row["label"]))] for row in all_rows(tmp_path / "out")} == {
        "好看": "pos", "难看": "neg", "好看的": "pos",
    }


def test_corrupt_parquet_file_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.parquet"
    path.write_bytes(b"not parquet at all")
    with pytest.raises(InputFileError, match=r"broken\.parquet: not a readable Parquet file"):
        prepare_files([path], tmp_path / "out")


def test_wrong_jsonl_column_is_an_error_after_the_probe_rows(tmp_path: Path, write_jsonl: WriteFile) -> None:
    # a file whose objects never have the column: an error listing the keys it does have
    path = write_jsonl("a.jsonl", [{"body": f"row {number}", "id": number} for number in range(3)])
    with pytest.raises(ColumnError, match=r"a\.jsonl: has no text column 'text'; columns found: 'body', 'id'"):
        list(read_records(open_input(path), "text", None))
    # a file where only the first objects lack it: counted drops, then the rest is read
    rows = [{"body": "x"}] * 5 + [{"text": f"row {number}"} for number in range(3)]
    records = list(read_records(open_input(write_jsonl("b.jsonl", rows)), "text", None))
    assert [type(record) for record in records] == [Dropped] * 5 + [RawRow] * 3
    assert {record.reason for record in records if isinstance(record, Dropped)} == {DropReason.MISSING_TEXT_COLUMN}
    # but a long run without it is a misnamed column
    long_run = [{"body": "x"}] * COLUMN_PROBE_ROWS + [{"text": "late"}]
    with pytest.raises(ColumnError):
        list(read_records(open_input(write_jsonl("c.jsonl", long_run)), "text", None))


def test_label_column_with_plain_text_is_a_settings_error(tmp_path: Path) -> None:
    path = tmp_path / "lines.txt"
    path.write_text("one\n", encoding="utf-8")
    with pytest.raises(SettingsError, match=r"lines\.txt: plain text files have no columns"):
        prepare_files([path], tmp_path / "out", PrepareSettings(label_column="label"))


def test_truncated_gzip_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "cut.txt.gz"
    path.write_bytes(gzip.compress(b"line\n" * 1000)[:-20])
    with pytest.raises(InputFileError, match=r"cut\.txt\.gz: cannot be read"):
        prepare_files([path], tmp_path / "out")
