"""Character-level normalization, seen through TextPipeline.clean()."""

from typing import Any

import pytest

from shoplm.textproc import NormalizeConfig, PreprocessConfig, TextPipeline


def clean(text: str, **normalize: Any) -> str:
    pipeline = TextPipeline(PreprocessConfig(normalize=NormalizeConfig(**normalize)))
    return pipeline.clean(text)


def test_fullwidth_ascii_becomes_halfwidth() -> None:
    # given full-width letters, digits and punctuation
    text = "ＡＢＣ１２３！"

    # when / then
    assert clean(text) == "ABC123!"


@pytest.mark.parametrize("unicode_form", [None, "NFC", "NFD"])
def test_fullwidth_mapping_works_without_nfkc(unicode_form: str | None) -> None:
    # given a form that does not fold compatibility characters by itself
    text = "ｐｒｉｃｅ：＄１２\u3000ＯＫ"

    # when
    cleaned = clean(text, unicode_form=unicode_form, collapse_whitespace=False)

    # then the full-width forms and the ideographic space are ASCII
    assert cleaned == "price:$12 OK"


def test_fullwidth_mapping_can_be_disabled() -> None:
    text = "ＡＢＣ\u3000ＤＥ"

    cleaned = clean(text, unicode_form=None, fullwidth_to_halfwidth=False, collapse_whitespace=False)

    assert cleaned == "ＡＢＣ\u3000ＤＥ"


def test_nfkc_folds_compatibility_characters() -> None:
    # given half-width katakana, a circled digit and a ligature
    text = "ｶﾀｶﾅ ① ﬁne"

    # when / then
    assert clean(text) == "カタカナ 1 fine"


def test_without_unicode_form_compatibility_characters_stay() -> None:
    assert clean("ﬁne ①", unicode_form=None) == "ﬁne ①"


def test_nfc_composes_and_nfd_decomposes() -> None:
    assert clean("cafe\u0301", unicode_form="NFC") == "café"
    assert clean("café", unicode_form="NFD") == "cafe\u0301"


def test_control_characters_are_removed() -> None:
    assert clean("a\x00b\x07c\x7fd\x9fe") == "abcde"


def test_newline_and_tab_become_spaces() -> None:
    # given line breaks and tabs, and collapsing turned off so single spaces show
    text = "line1\nline2\ttab\r\nend"

    # when
    cleaned = clean(text, collapse_whitespace=False)

    # then each whitespace control is one space
    assert cleaned == "line1 line2 tab  end"


def test_zero_width_and_format_characters_are_removed() -> None:
    # given zero-width space, non-joiner, joiner, word joiner, BOM and a soft hyphen
    text = "\ufeff商\u200b品\u200c评\u200d价\u2060好\u00ad"

    # when / then
    assert clean(text) == "商品评价好"


def test_lone_surrogate_is_removed() -> None:
    assert clean("ok\ud800!") == "ok!"


def test_control_characters_stay_when_stripping_is_off() -> None:
    text = "a\u200bb\x00c"

    assert clean(text, strip_control=False) == "a\u200bb\x00c"


def test_whitespace_runs_collapse_and_ends_are_stripped() -> None:
    # given spaces, newlines, an ideographic space and a no-break space
    text = "  good \n\n value\u3000\u00a0price  "

    # when / then
    assert clean(text) == "good value price"


def test_whitespace_is_kept_when_collapsing_is_off() -> None:
    text = " a  b "

    assert clean(text, collapse_whitespace=False) == " a  b "


def test_lowercase_only_when_enabled() -> None:
    text = "Hello WORLD Ａ"

    assert clean(text) == "Hello WORLD A"
    assert clean(text, lowercase=True) == "hello world a"


def test_lowercase_keeps_text_normalized() -> None:
    # given a Greek capital whose lowercase form is not NFC on its own
    text = "\u03aa\u0301"

    # when
    cleaned = clean(text, lowercase=True)

    # then the result is composed and stable under a second pass
    assert cleaned == "\u0390"
    assert clean(cleaned, lowercase=True) == cleaned


def test_non_str_input_is_rejected() -> None:
    pipeline = TextPipeline(PreprocessConfig())

    with pytest.raises(TypeError, match="text must be a str, got int"):
        pipeline.clean(123)
