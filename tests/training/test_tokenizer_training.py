"""Tokenizers trained for from-scratch models: the same text gives the same ids in any process."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

# Trains a tokenizer in a fresh process and prints its vocabulary: the `tokenizers` trainers keep
# hash maps seeded per process, so only separate processes show whether the ids depend on them.
TRAIN_AND_PRINT = """
import json, sys
from shoplm.training.config import TokenizerSpec
from shoplm.training.tokenizer_training import train_tokenizer
texts = [json.loads(line)["text"] for line in open(sys.argv[1], encoding="utf-8")]
spec = TokenizerSpec(kind=sys.argv[2], vocab_size=600, min_frequency=1)
tokenizer = train_tokenizer(spec, texts, causal=sys.argv[2] == "bpe")
print(json.dumps(sorted(tokenizer.get_vocab().items(), key=lambda item: item[1]), ensure_ascii=False))
"""


@pytest.mark.parametrize("kind", ["wordpiece", "bpe"])
def test_training_twice_gives_the_same_ids(kind: str, reviews_dir: Path) -> None:
    # Mixed scripts on purpose: the continuation forms ("##a", "##1") of WordPiece's alphabet
    # were the tokens whose ids changed from process to process.
    train = reviews_dir / "train.jsonl"
    vocabularies = [
        subprocess.run(
            [sys.executable, "-c", TRAIN_AND_PRINT, str(train), kind], capture_output=True, text=True, check=True
        ).stdout
        for _ in range(2)
    ]
    first = dict(json.loads(vocabularies[0]))
    assert vocabularies[0] == vocabularies[1]
    if kind == "wordpiece":
        assert [first[token] for token in ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")] == [0, 1, 2, 3, 4]
        assert any(token.startswith("##") for token in first)


def test_causal_bpe_starts_each_text_with_bos_and_encoder_bpe_wraps_it() -> None:
    from shoplm.training.config import TokenizerSpec
    from shoplm.training.tokenizer_training import train_tokenizer

    texts = ["wireless mouse, white", "蓝牙耳机 黑色", "gaming mouse, black"] * 5
    spec = TokenizerSpec(kind="bpe", vocab_size=300, min_frequency=1)
    causal = train_tokenizer(spec, texts, causal=True)
    encoder = train_tokenizer(spec, texts, causal=False)

    ids = causal("mouse")["input_ids"]
    # A one-word prompt keeps <s> before it: something to prefill when token healing takes the word back.
    assert ids[0] == causal.bos_token_id and len(ids) > 1 and causal.eos_token_id not in ids
    wrapped = encoder("mouse")["input_ids"]
    assert wrapped[0] == encoder.bos_token_id and wrapped[-1] == encoder.eos_token_id


def test_lexicon_terms_stay_whole_and_a_wrong_file_is_named(tmp_path: Path) -> None:
    from shoplm.config import ConfigError
    from shoplm.training.config import TokenizerSpec
    from shoplm.training.tokenizer_training import train_tokenizer

    texts = ["蓝牙耳机音质很好", "空气炸锅很好用", "耳机坏了"] * 5
    lexicon = tmp_path / "words.txt"
    lexicon.write_text("# retail terms\n蓝牙耳机 3000 n\n空气炸锅\n", encoding="utf-8")
    spec = TokenizerSpec(kind="wordpiece", vocab_size=300, min_frequency=1, added_tokens_file=lexicon)

    tokenizer = train_tokenizer(spec, texts, causal=False)

    added = tokenizer.get_added_vocab()
    ids = tokenizer("很好的蓝牙耳机, 空气炸锅", add_special_tokens=False)["input_ids"]
    assert ids[-3:] == [added["蓝牙耳机"], tokenizer.convert_tokens_to_ids(","), added["空气炸锅"]]
    data = tmp_path / "reviews.jsonl"
    data.write_text('{"text": "好"}\n', encoding="utf-8")
    binary = tmp_path / "binary.txt"
    binary.write_bytes(b"\xff\xfe")
    for path, message in ((data, "a .jsonl data file, not an added_tokens.json or a lexicon"),
                          (binary, "lexicon binary.txt: not UTF-8 text"), (tmp_path / "missing.txt", "no such file")):
        with pytest.raises(ConfigError, match=re.escape(f"tokenizer.added_tokens_file {path}: {message}")):
            train_tokenizer(spec.model_copy(update={"added_tokens_file": path}), texts, causal=False)
