"""TextPipeline end to end: tokenizers, encode, errors and concurrent use."""

from concurrent.futures import ThreadPoolExecutor

import pytest
from transformers import PreTrainedTokenizerBase

from shoplm.textproc import PaddingConfig, PreprocessConfig, SegmentConfig, TextPipeline
from shoplm.textproc.pipeline import special_token_frame

CLS, SEP = 2, 3  # word_tokenizer's special token ids


def words(*ids: int) -> str:
    """Text that word_tokenizer encodes to exactly `ids`."""
    return " ".join(f"t{token_id}" for token_id in ids)


@pytest.mark.real_models
def test_minilm_frame_is_cls_and_sep(minilm_tokenizer: PreTrainedTokenizerBase) -> None:
    prefix, suffix = special_token_frame(minilm_tokenizer)

    assert (prefix, suffix) == ([101], [102])
    assert len(prefix) + len(suffix) == minilm_tokenizer.num_special_tokens_to_add()


@pytest.mark.real_models
def test_smollm2_frame_is_empty(smollm2_tokenizer: PreTrainedTokenizerBase) -> None:
    prefix, suffix = special_token_frame(smollm2_tokenizer)

    assert (prefix, suffix) == ([], [])
    assert smollm2_tokenizer.num_special_tokens_to_add() == 0


@pytest.mark.real_models
@pytest.mark.parametrize(("fixture", "typed"), [("minilm_tokenizer", "[SEP]"), ("smollm2_tokenizer", "<|im_end|>")])
def test_special_token_strings_in_user_text_stay_plain_text(
    request: pytest.FixtureRequest, fixture: str, typed: str
) -> None:
    tokenizer = request.getfixturevalue(fixture)
    pipeline = TextPipeline(PreprocessConfig(), tokenizer)
    special_ids = set(tokenizer.all_special_ids)

    ids, _ = pipeline.token_ids(f"good {typed} bad")

    prefix, suffix = special_token_frame(tokenizer)
    content = ids[len(prefix) : len(ids) - len(suffix)]
    assert content and not special_ids & set(content)
    # The shared tokenizer still reads the string as its special token (chat templates need that).
    assert special_ids & set(tokenizer(f"good {typed} bad", add_special_tokens=False)["input_ids"])


@pytest.mark.real_models
def test_a_typed_mask_token_stays_the_blank_for_fill_mask(minilm_tokenizer: PreTrainedTokenizerBase) -> None:
    pipeline = TextPipeline(PreprocessConfig(), minilm_tokenizer)
    text = "paris is the [MASK] of france. [MASK]"

    ids, _ = pipeline.token_ids(text)

    assert ids == minilm_tokenizer(text)["input_ids"]
    assert ids.count(minilm_tokenizer.mask_token_id) == 2


@pytest.mark.real_models
def test_token_ids_match_the_tokenizer_on_cleaned_text(
    minilm_tokenizer: PreTrainedTokenizerBase,
) -> None:
    # given raw text with full-width characters and stray whitespace
    pipeline = TextPipeline(PreprocessConfig(), minilm_tokenizer)

    # when
    ids, truncated = pipeline.token_ids("  Ｇｒｅａｔ\u200b  value！\n")

    # then it is what the tokenizer makes of the cleaned text
    assert ids == minilm_tokenizer("Great value!")["input_ids"]
    assert truncated is False


@pytest.mark.real_models
def test_smollm2_token_ids_match_the_tokenizer(
    smollm2_tokenizer: PreTrainedTokenizerBase,
) -> None:
    pipeline = TextPipeline(PreprocessConfig(), smollm2_tokenizer)

    ids, truncated = pipeline.token_ids("Is this jacket waterproof?")

    assert ids == smollm2_tokenizer("Is this jacket waterproof?")["input_ids"]
    assert truncated is False


@pytest.mark.real_models
def test_encode_rows_equal_token_ids(minilm_tokenizer: PreTrainedTokenizerBase) -> None:
    # given texts of different lengths, one over the hard max
    config = PreprocessConfig(padding=PaddingConfig(max_length=10))
    pipeline = TextPipeline(config, minilm_tokenizer)
    texts = ["ok", "fits in the budget", "this review is much too long to fit in ten tokens"]

    # when
    batch = pipeline.encode(texts)

    # then each row, unpadded, is what token_ids gives for that text alone
    singles = [pipeline.token_ids(text) for text in texts]
    rows = [row[:length] for row, length in zip(batch.input_ids.tolist(), batch.lengths, strict=True)]
    assert rows == [ids for ids, _ in singles]
    assert batch.truncated == [cut for _, cut in singles] == [False, False, True]


def test_count_tokens_counts_special_tokens(word_tokenizer: PreTrainedTokenizerBase) -> None:
    pipeline = TextPipeline(PreprocessConfig(), word_tokenizer)

    assert pipeline.count_tokens(words(10, 11, 12)) == 5


def test_count_tokens_counts_what_the_model_sees(word_tokenizer: PreTrainedTokenizerBase) -> None:
    config = PreprocessConfig(padding=PaddingConfig(max_length=4))
    pipeline = TextPipeline(config, word_tokenizer)

    assert pipeline.count_tokens(words(*range(10, 20))) == 4


def test_token_ids_without_a_tokenizer_says_so() -> None:
    pipeline = TextPipeline(PreprocessConfig())

    with pytest.raises(RuntimeError, match="no tokenizer"):
        pipeline.token_ids("text")


def test_encode_rejects_an_empty_list(word_tokenizer: PreTrainedTokenizerBase) -> None:
    pipeline = TextPipeline(PreprocessConfig(), word_tokenizer)

    with pytest.raises(ValueError, match="at least one text"):
        pipeline.encode([])


def test_encode_rejects_a_bare_string(word_tokenizer: PreTrainedTokenizerBase) -> None:
    pipeline = TextPipeline(PreprocessConfig(), word_tokenizer)

    with pytest.raises(TypeError, match="wrap it in a list"):
        pipeline.encode("t10 t11")


def test_encode_rejects_a_non_str_text(word_tokenizer: PreTrainedTokenizerBase) -> None:
    pipeline = TextPipeline(PreprocessConfig(), word_tokenizer)

    with pytest.raises(TypeError, match="text must be a str, got NoneType"):
        pipeline.encode(["t10", None])


def test_limit_with_no_room_for_text_is_rejected(word_tokenizer: PreTrainedTokenizerBase) -> None:
    # given a hard max of 2, all of it taken by [CLS] and [SEP]
    config = PreprocessConfig(padding=PaddingConfig(max_length=2))

    # when / then
    with pytest.raises(ValueError, match="token limit 2 leaves no room for text"):
        TextPipeline(config, word_tokenizer)


@pytest.mark.real_models
def test_hard_max_over_the_model_maximum_is_rejected(
    minilm_tokenizer: PreTrainedTokenizerBase,
) -> None:
    config = PreprocessConfig(padding=PaddingConfig(max_length=1024))

    with pytest.raises(ValueError, match=r"padding\.max_length=1024 exceeds the tokenizer's model_max_length=512"):
        TextPipeline(config, minilm_tokenizer)


@pytest.mark.real_models
def test_concurrent_calls_give_the_sequential_results(
    minilm_tokenizer: PreTrainedTokenizerBase,
) -> None:
    # given one segmenting pipeline and many distinct texts
    config = PreprocessConfig(segment=SegmentConfig(enabled=True), padding=PaddingConfig(max_length=24))
    pipeline = TextPipeline(config, minilm_tokenizer)
    texts = [f"订单{number}的手机壳 arrived after {number} days, ＯＫ" for number in range(200)]
    expected = [pipeline.token_ids(text) for text in texts]

    # when 8 threads encode them at once
    with ThreadPoolExecutor(max_workers=8) as pool:
        singles = list(pool.map(pipeline.token_ids, texts))
        batches = list(pool.map(pipeline.encode, [texts[i : i + 10] for i in range(0, 200, 10)]))

    # then every result equals the sequential one
    assert singles == expected
    rows = [
        (row[:length], cut)
        for batch in batches
        for row, length, cut in zip(batch.input_ids.tolist(), batch.lengths, batch.truncated, strict=True)
    ]
    assert rows == expected
