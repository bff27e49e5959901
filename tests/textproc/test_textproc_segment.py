"""jieba word segmentation inside TextPipeline.clean()."""

from pathlib import Path

import pytest

from shoplm.textproc import PreprocessConfig, SegmentConfig, TextPipeline

SENTENCE = "小米智能手环真好用"


def segmenting_pipeline(**segment: object) -> TextPipeline:
    config = PreprocessConfig(segment=SegmentConfig(enabled=True, **segment))
    return TextPipeline(config)


@pytest.fixture(scope="module")
def plain_segmenter() -> TextPipeline:
    return segmenting_pipeline()


@pytest.fixture
def user_dict(tmp_path: Path) -> Path:
    path = tmp_path / "shop_words.txt"
    path.write_text("智能手环 20000 n\n", encoding="utf-8")
    return path


def test_chinese_sentence_is_split_into_words(plain_segmenter: TextPipeline) -> None:
    assert plain_segmenter.clean(SENTENCE) == "小米 智能 手环 真好 用"


def test_segmentation_is_off_by_default() -> None:
    assert TextPipeline(PreprocessConfig()).clean(SENTENCE) == SENTENCE


def test_user_dictionary_keeps_its_word_whole(user_dict: Path) -> None:
    # given a pipeline whose user dictionary knows the product word
    pipeline = segmenting_pipeline(user_dict=user_dict)

    # when
    segmented = pipeline.clean(SENTENCE)

    # then the word is one token, where the plain dictionary splits it
    assert segmented == "小米 智能手环 真好 用"


def test_user_dictionary_does_not_leak_to_other_pipelines(user_dict: Path) -> None:
    # given one pipeline built with the user dictionary
    segmenting_pipeline(user_dict=user_dict)

    # when another pipeline is built without it
    plain = segmenting_pipeline()

    # then that one still splits the word
    assert plain.clean(SENTENCE) == "小米 智能 手环 真好 用"


def test_missing_user_dictionary_names_the_path(tmp_path: Path) -> None:
    # given a config that points at no file; the config itself is valid
    missing = tmp_path / "nowhere" / "dict.txt"
    config = PreprocessConfig(segment=SegmentConfig(enabled=True, user_dict=missing))

    # when / then building the pipeline fails, naming the path
    with pytest.raises(FileNotFoundError, match=f"segment.user_dict: no such file: {missing}"):
        TextPipeline(config)


def test_separator_joins_words() -> None:
    pipeline = segmenting_pipeline(separator="/")

    assert pipeline.clean(SENTENCE) == "小米/智能/手环/真好/用"


def test_normalization_runs_before_segmentation(plain_segmenter: TextPipeline) -> None:
    # given full-width punctuation and a zero-width space inside the sentence
    text = "小米智能\u200b手环，真好用！"

    # when / then jieba sees the cleaned text
    assert plain_segmenter.clean(text) == "小米 智能 手环 , 真好 用 !"


def test_segmented_text_segments_to_itself(plain_segmenter: TextPipeline) -> None:
    # given text that was already segmented once
    once = plain_segmenter.clean("我在京东商城买了一台华为手机")

    # when / then the spaces between words are not taken for words of their own
    assert once == "我 在 京东 商城 买 了 一台 华为 手机"
    assert plain_segmenter.clean(once) == once


def test_segmentation_does_not_split_english_words(plain_segmenter: TextPipeline) -> None:
    assert plain_segmenter.clean("iPhone 15 手机壳") == "iPhone 15 手机 壳"
