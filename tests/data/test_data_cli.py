"""``data prepare`` through Typer's runner and as a real ``python -m shoplm.data`` process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from shoplm.data import DatasetCard, read_jsonl_split
from shoplm.data.cli import data_app

runner = CliRunner()
REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def reviews_csv(tmp_path: Path) -> Path:
    path = tmp_path / "reviews.csv"
    path.write_text(
        "review,stars\n" + "".join(f"review number {n} is here,{1 + n % 5}\n" for n in range(40)), encoding="utf-8"
    )
    return path


def test_prepare_reviews_corpus(tmp_path: Path, canonical_dir: Path) -> None:
    result = runner.invoke(data_app, ["prepare", "--corpus", "reviews", "--out", str(tmp_path / "out")])

    assert result.exit_code == 0, result.output
    assert "train" in result.stdout and "13,859" in result.stdout and "dataset_card.json" in result.stdout
    for name in ("train.jsonl", "validation.jsonl", "test.jsonl", "dataset_card.json", "dataset_card.md"):
        assert (tmp_path / "out" / name).is_file()
    # the command reproduces the canonical split exactly
    assert DatasetCard.load(tmp_path / "out").content_hash == DatasetCard.load(canonical_dir).content_hash


def test_prepare_files_with_options(tmp_path: Path, reviews_csv: Path) -> None:
    jsonl = tmp_path / "more.jsonl"
    jsonl.write_text(json.dumps({"review": "one more review that is long enough", "stars": 5}) + "\n", "utf-8")
    lexicon = REPO_ROOT / "configs" / "lexicon" / "retail.txt"

    result = runner.invoke(
        data_app,
        [
            "prepare", "--input", str(reviews_csv), str(jsonl), "--out", str(tmp_path / "out"),
            "--text-column", "review", "--label-column", "stars", "--label-from-rating",
            "--no-near-dup", "--split", "0.6,0.2,0.2", "--max-chars", "100", "--lexicon", str(lexicon),
        ],
    )

    assert result.exit_code == 0, result.output
    card = DatasetCard.load(tmp_path / "out")
    assert card.rows_read == 41 and card.drops["neutral_rating"] == 8
    assert card.rows_kept == 33 and card.settings["split"]["test"] == 0.2 and card.settings["near_dup"] is False
    assert card.extra["lexicon"]["terms"] > 50
    assert (tmp_path / "out" / "jieba_userdict.txt").is_file() and (tmp_path / "out" / "added_tokens.json").is_file()
    assert "neutral_rating" in result.stdout
    assert all(row["label"] in (0, 1) for row in read_jsonl_split(tmp_path / "out", "train"))


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--input", "nothere.csv"], "error: nothere.csv: no such file"),
        (["--input", "{csv}", "--text-column", "body"], "has no text column 'body'; columns found: 'review', 'stars'"),
        (["--input", "{csv}", "--text-column", "review", "--split", "0.9,0.2,0.1"], "split fractions must sum to 1"),
        (["--input", "{csv}", "--corpus", "news"], "give either --corpus NAME or --input FILE"),
        ([], "give either --corpus NAME or --input FILE"),
        (["--corpus", "reviews", "--label-column", "x"], "--label-column only applies to --input files"),
        (["--input", "{csv}", "--format", "xml"], "unknown format 'xml'"),
        (["--input", "{csv}", "--text-column", "review", "--encoding", "klingon"], "unknown encoding 'klingon'"),
        (["--corpus", "news", "--encoding", "gbk"], "--encoding only applies to --input files"),
        (["--input", "{csv}", "--text-column", "review", "--lexicon", "none.txt"], "lexicon none.txt: no such file"),
    ],
)
def test_user_errors_exit_2_with_one_line(
    tmp_path: Path, reviews_csv: Path, monkeypatch: pytest.MonkeyPatch, arguments: list[str], message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    arguments = [argument.replace("{csv}", reviews_csv.name) for argument in arguments]

    result = runner.invoke(data_app, ["prepare", *arguments, "--out", "out"])

    assert result.exit_code == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.exception is None or isinstance(result.exception, SystemExit)


@pytest.mark.parametrize(
    ("content", "message"),
    [("", "no rows kept: the input holds no rows"), ("{not json\n[1, 2]\n", "no rows kept: all 2 rows were dropped")],
)
def test_an_input_with_nothing_to_keep_exits_2_after_writing_the_card(
    tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_text(content, encoding="utf-8")

    result = runner.invoke(data_app, ["prepare", "--input", str(path), "--out", str(tmp_path / "out")])

    assert result.exit_code == 2
    assert message in result.stderr
    assert DatasetCard.load(tmp_path / "out").rows_kept == 0  # the card tells what was dropped and why


def test_a_gbk_spreadsheet_export_needs_its_encoding_and_the_command_says_so(tmp_path: Path) -> None:
    path = tmp_path / "export.csv"
    path.write_bytes("评论,评分\n很好用,5\n质量太差了,1\n".encode("gbk"))
    common = ["prepare", "--input", str(path), "--text-column", "评论", "--label-column", "评分", "--label-from-rating"]

    as_utf8 = runner.invoke(data_app, [*common, "--out", str(tmp_path / "utf8")])
    as_gbk = runner.invoke(data_app, [*common, "--encoding", "gb18030", "--out", str(tmp_path / "gbk")])

    # Read as UTF-8 the header itself is undecodable, so the text column is not found.
    assert as_utf8.exit_code == 2 and "has no text column '评论'" in as_utf8.stderr
    assert "header is not valid in the encoding read (pass --encoding" in as_utf8.stderr
    assert as_gbk.exit_code == 0, as_gbk.output
    rows = [row for split in ("train", "validation", "test") for row in read_jsonl_split(tmp_path / "gbk", split)]
    assert sorted((row["text"], row["label"]) for row in rows) == [("很好用", 1), ("质量太差了", 0)]


def test_rows_that_are_not_utf8_are_counted_with_a_hint(tmp_path: Path) -> None:
    path = tmp_path / "mixed.txt"
    path.write_bytes("很好用\n".encode() + "质量太差了\n".encode("gbk"))

    result = runner.invoke(data_app, ["prepare", "--input", str(path), "--out", str(tmp_path / "out")])

    assert result.exit_code == 0, result.output
    assert DatasetCard.load(tmp_path / "out").drops["bad_encoding"] == 1
    assert "1 rows are not valid UTF-8" in result.stderr and "--encoding gb18030" in result.stderr


def test_output_path_that_is_a_file_exits_2(tmp_path: Path, reviews_csv: Path) -> None:
    result = runner.invoke(data_app, ["prepare", "--input", str(reviews_csv), "--out", str(reviews_csv)])
    assert result.exit_code == 2 and "output reviews.csv exists and is not a directory" in result.stderr

    below_a_file = reviews_csv / "out"  # a directory cannot be made inside a file
    result = runner.invoke(data_app, ["prepare", "--input", str(reviews_csv), "--out", str(below_a_file)])
    assert result.exit_code == 2
    assert f"cannot create the output directory {below_a_file}: Not a directory" in result.stderr


def test_unknown_extension_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "data.xml"
    path.write_text("<a/>", encoding="utf-8")
    result = runner.invoke(data_app, ["prepare", "--input", str(path), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and "data.xml: unknown file extension '.xml'" in result.stderr


def test_real_process(tmp_path: Path, reviews_csv: Path) -> None:
    command = [sys.executable, "-m", "shoplm.data", "prepare", "--out", str(tmp_path / "out")]

    ok = subprocess.run(
        [*command, "--input", str(reviews_csv), "--text-column", "review", "--quiet"],
        capture_output=True, text=True, timeout=120, check=False,
    )
    failed = subprocess.run(
        [*command, "--input", str(tmp_path / "missing.jsonl")], capture_output=True, text=True, timeout=120, check=False
    )

    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip() == str(tmp_path / "out" / "dataset_card.json")
    assert DatasetCard.load(tmp_path / "out").rows_kept > 0
    assert failed.returncode == 2
    assert failed.stderr.strip() == "error: missing.jsonl: no such file"
