"""Truncation by characters and by tokens, and rejection of over-long text."""

import pytest
from transformers import PreTrainedTokenizerBase

from shoplm.textproc import (
    PaddingConfig,
    PreprocessConfig,
    TextPipeline,
    TextTooLongError,
    TruncateConfig,
)

CLS, SEP = 2, 3  # word_tokenizer's special token ids


def words(*ids: int) -> str:
    """Text that word_tokenizer encodes to exactly `ids`."""
    return " ".join(f"t{token_id}" for token_id in ids)


def char_pipeline(max_length: int, **truncate: object) -> TextPipeline:
    config = TruncateConfig(unit="chars", max_length=max_length, **truncate)
    return TextPipeline(PreprocessConfig(truncate=config))


def token_pipeline(tokenizer: PreTrainedTokenizerBase, hard_max: int, **truncate: object) -> TextPipeline:
    config = PreprocessConfig(
        truncate=TruncateConfig(**truncate),
        padding=PaddingConfig(max_length=hard_max),
    )
    return TextPipeline(config, tokenizer)


@pytest.mark.parametrize(
    ("strategy", "head_fraction", "expected"),
    [
        ("head", 0.5, "abcd"),
        ("tail", 0.5, "ghij"),
        ("head_tail", 0.5, "abij"),
        ("head_tail", 0.25, "ahij"),
        ("head_tail", 0.75, "abcj"),
    ],
)
def test_chars_are_cut_by_strategy(strategy: str, head_fraction: float, expected: str) -> None:
    # given a 10-character text and a 4-character budget
    pipeline = char_pipeline(4, strategy=strategy, head_fraction=head_fraction)

    # when / then
    assert pipeline.clean("abcdefghij") == expected


def test_text_within_the_char_budget_is_untouched() -> None:
    pipeline = char_pipeline(10, strategy="tail")

    assert pipeline.clean("abcdefghij") == "abcdefghij"


def test_chars_are_counted_after_normalization() -> None:
    # given 7 raw characters that normalize to 4
    pipeline = char_pipeline(4, on_overflow="error")

    # when / then nothing is cut
    assert pipeline.clean(" ＡＢ\u200bＣＤ\n ") == "ABCD"


def test_char_cut_leaves_no_whitespace_at_the_ends() -> None:
    assert char_pipeline(3).clean("ab cd ef") == "ab"
    assert char_pipeline(3, strategy="tail").clean("ab cd ef") == "ef"


def test_char_head_tail_join_keeps_one_space() -> None:
    # given a cut whose head ends and tail starts with a space
    pipeline = char_pipeline(8, strategy="head_tail")

    # when / then the two spaces become one
    assert pipeline.clean("abc xyz def") == "abc def"


def test_char_overflow_error_names_length_and_limit() -> None:
    pipeline = char_pipeline(4, on_overflow="error")

    with pytest.raises(TextTooLongError, match=r"text is 10 chars long, over the limit of 4 chars"):
        pipeline.clean("abcdefghij")


def test_char_overflow_error_spares_text_at_the_limit() -> None:
    assert char_pipeline(4, on_overflow="error").clean("abcd") == "abcd"


@pytest.mark.parametrize(
    ("strategy", "kept"),
    [
        ("head", [10, 11, 12, 13]),
        ("tail", [16, 17, 18, 19]),
        ("head_tail", [10, 11, 18, 19]),
    ],
)
def test_token_cut_keeps_cls_and_sep(word_tokenizer: PreTrainedTokenizerBase, strategy: str, kept: list[int]) -> None:
    # given 10 content tokens and a hard max of 6, of which [CLS] and [SEP] take 2
    pipeline = token_pipeline(word_tokenizer, 6, strategy=strategy)

    # when
    ids, truncated = pipeline.token_ids(words(*range(10, 20)))

    # then
    assert ids == [CLS, *kept, SEP]
    assert truncated is True


def test_token_budget_is_the_smaller_of_truncate_and_padding(
    word_tokenizer: PreTrainedTokenizerBase,
) -> None:
    pipeline = token_pipeline(word_tokenizer, 512, max_length=5, strategy="tail")

    assert pipeline.token_ids(words(*range(10, 20))) == ([CLS, 17, 18, 19, SEP], True)


def test_text_at_the_token_limit_is_not_truncated(word_tokenizer: PreTrainedTokenizerBase) -> None:
    pipeline = token_pipeline(word_tokenizer, 6)

    assert pipeline.token_ids(words(10, 11, 12, 13)) == ([CLS, 10, 11, 12, 13, SEP], False)


def test_without_special_tokens_the_whole_budget_is_content(
    word_tokenizer: PreTrainedTokenizerBase,
) -> None:
    config = PreprocessConfig(add_special_tokens=False, padding=PaddingConfig(max_length=3))
    pipeline = TextPipeline(config, word_tokenizer)

    assert pipeline.token_ids(words(10, 11, 12, 13)) == ([10, 11, 12], True)


def test_char_truncation_leaves_tokens_to_the_hard_max(
    word_tokenizer: PreTrainedTokenizerBase,
) -> None:
    # given a char budget that the text fits and a token hard max that it does not
    config = PreprocessConfig(
        truncate=TruncateConfig(unit="chars", max_length=100),
        padding=PaddingConfig(max_length=4),
    )
    pipeline = TextPipeline(config, word_tokenizer)

    # when / then the hard max still cuts
    assert pipeline.token_ids(words(10, 11, 12)) == ([CLS, 10, 11, SEP], True)


def test_char_cut_is_reported_as_truncated(word_tokenizer: PreTrainedTokenizerBase) -> None:
    config = PreprocessConfig(truncate=TruncateConfig(unit="chars", max_length=7))
    pipeline = TextPipeline(config, word_tokenizer)

    assert pipeline.token_ids(words(10, 11, 12)) == ([CLS, 10, 11, SEP], True)


def test_token_overflow_error_names_length_and_limit(
    word_tokenizer: PreTrainedTokenizerBase,
) -> None:
    pipeline = token_pipeline(word_tokenizer, 6, on_overflow="error")

    with pytest.raises(TextTooLongError, match=r"12 tokens long, over the limit of 6 tokens") as error:
        pipeline.token_ids(words(*range(10, 20)))

    assert (error.value.length, error.value.limit, error.value.unit) == (12, 6, "tokens")


def test_overflow_error_rejects_the_whole_batch(word_tokenizer: PreTrainedTokenizerBase) -> None:
    pipeline = token_pipeline(word_tokenizer, 6, on_overflow="error")

    with pytest.raises(TextTooLongError):
        pipeline.encode([words(10), words(*range(10, 20))])


@pytest.mark.real_models
def test_minilm_cut_keeps_cls_and_sep_around_the_first_words(
    minilm_tokenizer: PreTrainedTokenizerBase,
) -> None:
    # given the real BERT tokenizer and a hard max of 8
    text = "the quick brown fox jumps over the lazy dog near the river bank"
    content = minilm_tokenizer.encode(text, add_special_tokens=False)
    pipeline = token_pipeline(minilm_tokenizer, 8)

    # when
    ids, truncated = pipeline.token_ids(text)

    # then [CLS] and [SEP] frame the first 6 content tokens
    assert ids == [minilm_tokenizer.cls_token_id, *content[:6], minilm_tokenizer.sep_token_id]
    assert minilm_tokenizer.decode(ids) == "[CLS] the quick brown fox jumps over [SEP]"
    assert truncated is True


@pytest.mark.real_models
def test_minilm_head_tail_cut(minilm_tokenizer: PreTrainedTokenizerBase) -> None:
    text = "the quick brown fox jumps over the lazy dog near the river bank"
    pipeline = token_pipeline(minilm_tokenizer, 8, strategy="head_tail")

    ids, _ = pipeline.token_ids(text)

    assert minilm_tokenizer.decode(ids) == "[CLS] the quick brown the river bank [SEP]"
