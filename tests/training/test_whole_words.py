"""Whole-word masking: word boundaries from jieba and WordPiece, and its config checks."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from shoplm.config import ConfigError
from shoplm.training import load_train_config
from shoplm.training.models import ModelSpecError
from shoplm.training.whole_words import WholeWordStarts
from tests.training.conftest import tiny_config, write_config

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def wordpiece_tokenizer(pieces: list[str]) -> PreTrainedTokenizerFast:
    vocabulary = {token: index for index, token in enumerate(SPECIALS + pieces)}
    backend = Tokenizer(models.WordPiece(vocabulary, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    return PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="[PAD]", unk_token="[UNK]",
                                   cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")


def test_chinese_runs_split_into_jieba_words_and_wordpiece_continuations_join_their_word() -> None:
    tokenizer = wordpiece_tokenizer([*"手机屏幕很清楚物流", "ok", "##ay"])
    tokens = ["[CLS]", *"手机屏幕", "ok", "##ay", *"物流", "[SEP]", "[PAD]"]
    ids = torch.tensor([tokenizer.convert_tokens_to_ids(tokens)])

    starts = WholeWordStarts(tokenizer)(ids)[0].tolist()

    # [CLS] 手机 屏幕 ok##ay 物流 [SEP] [PAD]
    assert starts == [0, 1, 1, 3, 3, 5, 5, 7, 7, 9, 10]


def test_a_continuation_piece_after_a_special_token_starts_its_own_word() -> None:
    tokenizer = wordpiece_tokenizer(["##ay"])
    ids = torch.tensor([tokenizer.convert_tokens_to_ids(["[CLS]", "##ay", "##ay", "[SEP]"])])

    assert WholeWordStarts(tokenizer)(ids)[0].tolist() == [0, 1, 1, 3]


def test_a_byte_level_bpe_tokenizer_is_refused_with_the_reason() -> None:
    backend = Tokenizer(models.BPE({"<unk>": 0, "a": 1}, [], unk_token="<unk>"))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>")

    with pytest.raises(ModelSpecError, match="needs a WordPiece tokenizer"):
        WholeWordStarts(tokenizer)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"training": {"whole_word_masking": True}}, "whole_word_masking is for tasks 'mlm' and 'rtd'"),
        ({"task": "mlm", "training": {"whole_word_masking": True}, "tokenizer": {"kind": "bpe"}},
         "whole_word_masking needs tokenizer.kind 'wordpiece'"),
    ],
)
def test_whole_word_masking_config_mistakes_are_named(
    tmp_path: Path, reviews_dir: Path, change: dict, message: str
) -> None:
    config = tiny_config(tmp_path / "run", reviews_dir, **change)

    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        load_train_config(write_config(tmp_path / "bad.yaml", config))
