"""The lexicon: parsing, the jieba user dictionary, added tokens for tokenizers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tokenizers import Tokenizer, models, pre_tokenizers

from shoplm.data import InputFileError, load_added_tokens, read_lexicon, write_lexicon_outputs
from shoplm.data.knowledge import ADDED_TOKENS, JIEBA_USERDICT
from shoplm.textproc import SegmentConfig
from shoplm.textproc.segment import Segmenter

REPO_LEXICON = Path(__file__).resolve().parents[2] / "configs" / "lexicon" / "retail.txt"
SENTENCE = "支持七天无理由退货的蓝牙耳机"


@pytest.fixture
def lexicon_file(tmp_path: Path) -> Path:
    path = tmp_path / "words.txt"
    path.write_text(
        "# a comment\n"
        "\n"
        "七天无理由退货 2000 n\n"
        "蓝牙耳机 n\n"
        "空气炸锅\n"
        "ＡＩＲ fryer\n"
        "Lumio 300 nz\n"
        "蓝牙耳机 5\n"
        "\x00\x01\n",  # nothing left after normalization
        encoding="utf-8",
    )
    return path


def test_lexicon_entries_are_parsed_and_normalized(lexicon_file: Path) -> None:
    lexicon = read_lexicon(lexicon_file)
    assert [(entry.term, entry.freq, entry.tag) for entry in lexicon.entries] == [
        ("七天无理由退货", 2000, "n"),
        ("蓝牙耳机", None, "n"),
        ("空气炸锅", None, None),
        ("AIR fryer", None, None),
        ("Lumio", 300, "nz"),
    ]
    assert lexicon.duplicates == 1 and lexicon.empty == 1


def test_outputs_are_a_jieba_dictionary_and_added_tokens(lexicon_file: Path, tmp_path: Path) -> None:
    summary = write_lexicon_outputs(lexicon_file, tmp_path / "out")

    lines = (tmp_path / "out" / JIEBA_USERDICT).read_text(encoding="utf-8").splitlines()
    assert lines == ["七天无理由退货 2000 n", "蓝牙耳机 n", "空气炸锅", "Lumio 300 nz"]
    tokens = json.loads((tmp_path / "out" / ADDED_TOKENS).read_text(encoding="utf-8"))
    assert [token["content"] for token in tokens] == ["七天无理由退货", "蓝牙耳机", "空气炸锅", "AIR fryer", "Lumio"]
    assert [token["single_word"] for token in tokens] == [False, False, False, True, True]
    assert summary["terms"] == 5 and summary["jieba_terms"] == 4 and summary["source"] == "words.txt"
    assert summary["empty_lines"] == 1


def test_jieba_keeps_lexicon_terms_whole(lexicon_file: Path, tmp_path: Path) -> None:
    write_lexicon_outputs(lexicon_file, tmp_path / "out")
    plain = Segmenter(SegmentConfig(enabled=True)).segment(SENTENCE).split()
    assert "七天无理由退货" not in plain  # jieba alone splits it

    with_lexicon = Segmenter(SegmentConfig(enabled=True, user_dict=tmp_path / "out" / JIEBA_USERDICT))

    words = with_lexicon.segment(SENTENCE).split()
    assert "七天无理由退货" in words and "蓝牙耳机" in words


def test_added_tokens_keep_terms_whole_in_a_tokenizer(lexicon_file: Path, tmp_path: Path) -> None:
    write_lexicon_outputs(lexicon_file, tmp_path / "out")
    vocab = {"[UNK]": 0, **{char: index + 1 for index, char in enumerate("支持的七天无理由退货蓝牙耳机")}}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Split("", behavior="isolated")

    tokenizer.add_tokens(load_added_tokens(tmp_path / "out" / ADDED_TOKENS))

    tokens = tokenizer.encode(SENTENCE).tokens
    assert "七天无理由退货" in tokens and "蓝牙耳机" in tokens


def test_bundled_retail_lexicon_loads() -> None:
    lexicon = read_lexicon(REPO_LEXICON)
    terms = {entry.term for entry in lexicon.entries}
    assert 50 <= len(terms) <= 120
    assert {"蓝牙耳机", "性价比", "包邮", "七天无理由退货", "air fryer"} <= terms
    assert lexicon.duplicates == 0


def test_missing_lexicon_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match=r"lexicon nope\.txt: no such file"):
        write_lexicon_outputs(tmp_path / "nope.txt", tmp_path / "out")
