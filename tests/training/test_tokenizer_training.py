"""Tokenizers trained for from-scratch models: the same text gives the same ids in any process."""

from __future__ import annotations

import json
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
