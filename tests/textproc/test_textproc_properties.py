"""Properties that hold for any input text."""

import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import PreTrainedTokenizerBase

from shoplm.textproc import (
    NormalizeConfig,
    PaddingConfig,
    PreprocessConfig,
    TextPipeline,
    TruncateConfig,
)

CLEANING_PIPELINES = {
    "default": TextPipeline(PreprocessConfig()),
    "lowercase": TextPipeline(PreprocessConfig(normalize=NormalizeConfig(lowercase=True))),
    "nfc": TextPipeline(PreprocessConfig(normalize=NormalizeConfig(unicode_form="NFC"))),
    "nfd": TextPipeline(PreprocessConfig(normalize=NormalizeConfig(unicode_form="NFD"))),
    "no_form": TextPipeline(PreprocessConfig(normalize=NormalizeConfig(unicode_form=None))),
    "chars_head_tail": TextPipeline(
        PreprocessConfig(truncate=TruncateConfig(unit="chars", max_length=7, strategy="head_tail"))
    ),
    "chars_tail_lowercase": TextPipeline(
        PreprocessConfig(
            normalize=NormalizeConfig(lowercase=True),
            truncate=TruncateConfig(unit="chars", max_length=5, strategy="tail"),
        )
    ),
}

# Full-width forms, combining marks and zero-width characters next to plain text find the
# interactions between steps that uniform random text rarely hits.
TRICKY_CHARACTERS = list("aAé ＡＺ１！\u3000\u00a0\n\t\r\u200b\u200d\ufeff\u0301\u0345\u0399ΐﬁ①ｶ")
texts = st.text(st.characters() | st.sampled_from(TRICKY_CHARACTERS), max_size=40)

REMOVED_CATEGORIES = {"Cc", "Cf", "Cs"}


@pytest.mark.parametrize("name", sorted(CLEANING_PIPELINES))
@given(text=texts)
def test_clean_is_idempotent_and_leaves_no_control_characters(name: str, text: str) -> None:
    pipeline = CLEANING_PIPELINES[name]

    cleaned = pipeline.clean(text)

    assert pipeline.clean(cleaned) == cleaned
    assert [char for char in cleaned if unicodedata.category(char) in REMOVED_CATEGORIES] == []
    assert cleaned == cleaned.strip()
    assert "  " not in cleaned


@given(text=texts, max_length=st.integers(min_value=1, max_value=12))
def test_char_truncation_respects_the_budget(text: str, max_length: int) -> None:
    config = PreprocessConfig(truncate=TruncateConfig(unit="chars", max_length=max_length, strategy="head_tail"))

    assert len(TextPipeline(config).clean(text)) <= max_length


@settings(max_examples=60, deadline=None)
@given(
    token_counts=st.lists(st.integers(min_value=0, max_value=40), min_size=1, max_size=6),
    max_length=st.integers(min_value=3, max_value=24),
    strategy=st.sampled_from(["head", "tail", "head_tail"]),
    side=st.sampled_from(["right", "left"]),
)
def test_encode_never_exceeds_the_hard_max(
    word_tokenizer: PreTrainedTokenizerBase,
    token_counts: list[int],
    max_length: int,
    strategy: str,
    side: str,
) -> None:
    # given texts of any length up to 40 tokens
    config = PreprocessConfig(
        truncate=TruncateConfig(strategy=strategy),
        padding=PaddingConfig(max_length=max_length, side=side),
    )
    pipeline = TextPipeline(config, word_tokenizer)
    texts = [" ".join(f"t{4 + index}" for index in range(count)) for count in token_counts]

    # when
    batch = pipeline.encode(texts)

    # then no row is longer than the hard max, and the mask covers exactly the real tokens
    assert batch.input_ids.shape[1] <= max_length
    assert batch.lengths == [min(count + 2, max_length) for count in token_counts]
    assert batch.attention_mask.sum(dim=1).tolist() == batch.lengths
    assert batch.truncated == [count + 2 > max_length for count in token_counts]


@pytest.mark.real_models
@settings(max_examples=50, deadline=None)
@given(text=texts, max_length=st.integers(min_value=3, max_value=16))
def test_minilm_ids_keep_cls_and_sep_within_the_limit(
    minilm_tokenizer: PreTrainedTokenizerBase, text: str, max_length: int
) -> None:
    config = PreprocessConfig(
        truncate=TruncateConfig(strategy="head_tail"),
        padding=PaddingConfig(max_length=max_length),
    )
    pipeline = TextPipeline(config, minilm_tokenizer)

    ids, _ = pipeline.token_ids(text)

    assert len(ids) <= max_length
    assert ids[0] == minilm_tokenizer.cls_token_id
    assert ids[-1] == minilm_tokenizer.sep_token_id
    assert minilm_tokenizer.cls_token_id not in ids[1:-1]
    assert minilm_tokenizer.sep_token_id not in ids[1:-1]
