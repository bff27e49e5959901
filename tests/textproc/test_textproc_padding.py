"""Padding a batch: strategies, sides, masks, pad ids and the hard maximum."""

import pytest
import torch
from transformers import PreTrainedTokenizerBase

from shoplm.textproc import EncodedBatch, PaddingConfig, PreprocessConfig, TextPipeline

CLS, SEP = 2, 3  # word_tokenizer's special token ids


def words(*ids: int) -> str:
    """Text that word_tokenizer encodes to exactly `ids`."""
    return " ".join(f"t{token_id}" for token_id in ids)


def padder(**padding: object) -> TextPipeline:
    return TextPipeline(PreprocessConfig(padding=PaddingConfig(**padding)))


def as_lists(batch: EncodedBatch) -> tuple[list[list[int]], list[list[int]]]:
    return batch.input_ids.tolist(), batch.attention_mask.tolist()


def test_longest_right_padding() -> None:
    # given
    pipeline = padder()

    # when
    batch = pipeline.pad([[5, 6, 7], [8]])

    # then
    assert as_lists(batch) == ([[5, 6, 7], [8, 0, 0]], [[1, 1, 1], [1, 0, 0]])
    assert batch.lengths == [3, 1]
    assert batch.truncated == [False, False]
    assert batch.input_ids.dtype == torch.long
    assert batch.attention_mask.dtype == torch.long


def test_longest_left_padding() -> None:
    batch = padder(side="left").pad([[5, 6, 7], [8]], truncated=[True, False])

    assert as_lists(batch) == ([[5, 6, 7], [0, 0, 8]], [[1, 1, 1], [0, 0, 1]])
    assert batch.truncated == [True, False]


def test_fixed_padding_pads_to_length() -> None:
    batch = padder(strategy="fixed", length=5).pad([[5, 6], [7]])

    assert as_lists(batch) == (
        [[5, 6, 0, 0, 0], [7, 0, 0, 0, 0]],
        [[1, 1, 0, 0, 0], [1, 0, 0, 0, 0]],
    )


@pytest.mark.parametrize(
    ("longest", "width"),
    [(1, 4), (4, 4), (5, 8), (8, 8), (9, 12)],
)
def test_bucket_padding_picks_the_smallest_bucket_that_fits(longest: int, width: int) -> None:
    # given buckets 4 and 8 and a hard max of 12
    pipeline = padder(strategy="bucket", buckets=[4, 8], max_length=12)

    # when
    batch = pipeline.pad([[9] * longest, [9]])

    # then
    assert tuple(batch.input_ids.shape) == (2, width)
    assert batch.attention_mask.sum(dim=1).tolist() == [longest, 1]


@pytest.mark.real_models
def test_pad_id_comes_from_the_tokenizer(minilm_tokenizer: PreTrainedTokenizerBase) -> None:
    batch = TextPipeline(PreprocessConfig(), minilm_tokenizer).pad([[101, 102], [101]])

    assert batch.input_ids.tolist() == [[101, 102], [101, minilm_tokenizer.pad_token_id]]


def test_pad_id_falls_back_to_eos(padless_tokenizer: PreTrainedTokenizerBase) -> None:
    # given a tokenizer with no pad token, whose eos is [SEP]
    pipeline = TextPipeline(PreprocessConfig(), padless_tokenizer)

    # when / then
    assert pipeline.pad_token_id == SEP
    assert pipeline.pad([[5, 6], [7]]).input_ids.tolist() == [[5, 6], [7, SEP]]


def test_pad_id_is_zero_without_a_tokenizer() -> None:
    assert padder().pad_token_id == 0


def test_pad_rejects_a_sequence_over_the_hard_max() -> None:
    pipeline = padder(max_length=3)

    with pytest.raises(ValueError, match=r"sequences\[1\] has 4 tokens, over the padding limit of 3"):
        pipeline.pad([[1], [1, 2, 3, 4]])


def test_pad_rejects_an_empty_batch() -> None:
    with pytest.raises(ValueError, match="at least one sequence"):
        padder().pad([])


def test_pad_rejects_truncated_flags_of_another_length() -> None:
    with pytest.raises(ValueError, match="truncated has 1 entries for 2 sequences"):
        padder().pad([[1], [2]], truncated=[False])


def test_encode_enforces_the_hard_max(word_tokenizer: PreTrainedTokenizerBase) -> None:
    # given a hard max of 6 and texts of 20 and 2 content tokens
    config = PreprocessConfig(padding=PaddingConfig(max_length=6))
    pipeline = TextPipeline(config, word_tokenizer)

    # when
    batch = pipeline.encode([words(*range(10, 30)), words(40, 41)])

    # then
    assert as_lists(batch) == (
        [[CLS, 10, 11, 12, 13, SEP], [CLS, 40, 41, SEP, 0, 0]],
        [[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]],
    )
    assert batch.lengths == [6, 4]
    assert batch.truncated == [True, False]


def test_fixed_length_also_caps_each_sequence(word_tokenizer: PreTrainedTokenizerBase) -> None:
    config = PreprocessConfig(padding=PaddingConfig(strategy="fixed", length=4))
    pipeline = TextPipeline(config, word_tokenizer)

    batch = pipeline.encode([words(*range(10, 20)), words(40)])

    assert as_lists(batch) == ([[CLS, 10, 11, SEP], [CLS, 40, SEP, 0]], [[1, 1, 1, 1], [1, 1, 1, 0]])
    assert batch.truncated == [True, False]


@pytest.mark.real_models
def test_smollm2_left_padding_for_generation(smollm2_tokenizer: PreTrainedTokenizerBase) -> None:
    # given the real byte-level BPE tokenizer, which adds no special tokens and pads with eos
    config = PreprocessConfig(padding=PaddingConfig(side="left"))
    pipeline = TextPipeline(config, smollm2_tokenizer)
    long_ids = smollm2_tokenizer.encode("Recommend a rain jacket", add_special_tokens=False)
    short_ids = smollm2_tokenizer.encode("Hi", add_special_tokens=False)

    # when
    batch = pipeline.encode(["Recommend a rain jacket", "Hi"])

    # then the short prompt is right-aligned after eos padding
    pad = smollm2_tokenizer.eos_token_id
    padding = [pad] * (len(long_ids) - len(short_ids))
    assert batch.input_ids.tolist() == [long_ids, [*padding, *short_ids]]
    assert batch.attention_mask.tolist() == [
        [1] * len(long_ids),
        [0] * len(padding) + [1] * len(short_ids),
    ]
