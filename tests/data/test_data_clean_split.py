"""Cleaning, labels and split assignment as units."""

from __future__ import annotations

import random

import pytest

from shoplm.data import SettingsError, parse_split
from shoplm.data.clean import clean_text, looks_like_html, strip_html
from shoplm.data.dedup import ExactDeduplicator, NearDuplicateFilter, text_digest
from shoplm.data.labels import build_label_map, label_key
from shoplm.data.rows import DropReason
from shoplm.data.split import SplitAssigner
from shoplm.textproc.config import NormalizeConfig

NORMALIZE = NormalizeConfig()


@pytest.mark.parametrize(
    ("raw", "cleaned"),
    [
        ("<p>Great <b>phone</b></p><script>track()</script>", "Great phone"),
        ("彼得&#183;林奇的书", "彼得·林奇的书"),
        ("line<br>break", "line break"),
        ("<b>非常</b>满意<span>，</span>推<em>荐</em>", "非常满意,推荐"),  # inline markup: no space
        ("<ul><li>好</li><li>快</li></ul><p>便宜</p><div>送货</div>", "好 快 便宜 送货"),
        ("<table><tr><td>价格</td><td>100</td></tr></table>", "价格 100"),
        ("和龙应台的<孩子慢慢来>相比", "和龙应台的<孩子慢慢来>相比"),  # not a tag: kept as written
        ("R&D team, 5 > 3", "R&D team, 5 > 3"),
        ("ＡＢＣ\u200b  １２３", "ABC 123"),
    ],
)
def test_clean_text(raw: str, cleaned: str) -> None:
    assert clean_text(raw, NORMALIZE, 100) == (cleaned, None)


def test_clean_text_drops() -> None:
    assert clean_text("  \t ", NORMALIZE, 100) == ("", DropReason.EMPTY)
    assert clean_text("<div><img src='x.png'></div>", NORMALIZE, 100) == ("", DropReason.HTML_ONLY)
    assert clean_text("x" * 101, NORMALIZE, 100) == ("", DropReason.TOO_LONG)
    assert clean_text("x" * 100, NORMALIZE, 100) == ("x" * 100, None)


def test_html_is_parsed_only_when_it_looks_like_html() -> None:
    assert not looks_like_html("a < b and c > d")
    assert looks_like_html("<i>x</i>") and looks_like_html("a&nbsp;b") and looks_like_html("&#x41;")
    assert strip_html("<style>p{}</style><p>visible</p>").strip() == "visible"
    assert clean_text("<p>kept</p>", NORMALIZE, 100, remove_html=False) == ("<p>kept</p>", None)


@pytest.mark.parametrize(
    ("value", "key"),
    [
        (1, "1"),
        (True, "1"),
        ("2", "2"),
        (" 2.0 ", "2"),
        (3.0, "3"),
        ("pos", "pos"),
        (None, DropReason.MISSING_LABEL),
        ("  ", DropReason.MISSING_LABEL),
        (0.5, DropReason.BAD_LABEL),
        ([1], DropReason.BAD_LABEL),
    ],
)
def test_label_key(value: object, key: str) -> None:
    assert label_key(value) == key


@pytest.mark.parametrize(
    ("rating", "key"),
    [
        *((rating, "1") for rating in (5, "4", 4.5)),
        *((rating, "0") for rating in (2, "1", 1.5)),
        (3, DropReason.NEUTRAL_RATING),
        *((rating, DropReason.BAD_LABEL) for rating in (6, "five", 0, float("nan"), True)),
    ],
)
def test_rating_labels(rating: object, key: str) -> None:
    assert label_key(rating, from_rating=True) == key


def test_label_map_rule() -> None:
    assert build_label_map(["3", "10"]).ids == {"3": 3, "10": 10}
    # Integers that cannot be class ids are numbered in numeric order, as names.
    assert build_label_map(["1", "-1"]).ids == {"-1": 0, "1": 1}
    big = label_key(1e30)
    assert build_label_map([big, "2", "10"]).names == ["2", "10", big]
    long_digits = "1" * 5000 + ".0"  # past Python's limit for converting digits to int
    assert label_key(long_digits) == long_digits
    assert label_key("+7.00") == "7"
    mapped = build_label_map(["pos", "neg", "1"])
    assert mapped.names == ["1", "neg", "pos"] and mapped.to_id("pos") == 2


def test_parse_split() -> None:
    assert parse_split("0.8,0.1,0.1") == (0.8, 0.1, 0.1)
    assert parse_split(" 0.9, 0.1 ,0 ") == (0.9, 0.1, 0.0)
    for bad in ("0.8,0.1", "a,b,c", "0.8,0.3,0.1", "0,0.5,0.5", "1.2,-0.1,-0.1"):
        with pytest.raises(SettingsError, match="split"):
            parse_split(bad)


def test_split_assignment_is_by_text_and_balanced() -> None:
    assigner = SplitAssigner((0.8, 0.1, 0.1))
    digests = [text_digest(f"text {n}") for n in range(20000)]
    splits = [assigner.assign(digest) for digest in digests]
    assert splits == [SplitAssigner((0.8, 0.1, 0.1)).assign(digest) for digest in digests]
    shares = {name: splits.count(name) / len(splits) for name in ("train", "validation", "test")}
    assert abs(shares["train"] - 0.8) < 0.01 and abs(shares["validation"] - 0.1) < 0.01
    # a pinned example: the salt-free hash gives the same answer everywhere
    assert text_digest("hello").hex().startswith("2cf24dba")
    assert assigner.assign(text_digest("hello")) == "train"


def test_exact_deduplicator_tracks_labels() -> None:
    dedup = ExactDeduplicator()
    a, b = text_digest("a"), text_digest("b")
    assert dedup.check(a, "1") is None
    assert dedup.check(a, "1") == DropReason.EXACT_DUPLICATE
    assert dedup.check(a, "0") == DropReason.CONFLICTING_LABEL
    assert dedup.check(a, "0") == DropReason.EXACT_DUPLICATE
    assert dedup.check(b, None) is None
    assert dedup.is_conflicting(a) and not dedup.is_conflicting(b)


def test_near_duplicate_filter() -> None:
    near = NearDuplicateFilter(threshold=0.9, num_perm=128, shingle_size=4, min_chars=20)
    base = (
        "The quick brown fox jumps over the lazy dog while the cat watches from the warm windowsill, "
        "and the shop assistant packs another parcel of running shoes for the evening delivery round."
    )
    assert not near.is_duplicate(base)
    assert near.is_duplicate(base.replace("lazy dog", "lazy dog!"))
    assert near.is_duplicate(base.upper().lower() + "!!")
    assert not near.is_duplicate("A completely different sentence about running shoes and their soles.")
    assert not near.is_duplicate("too short")


def test_near_duplicates_ignore_punctuation_spacing_and_case() -> None:
    near = NearDuplicateFilter(threshold=0.9, num_perm=128, shingle_size=4, min_chars=20)
    review = "这个手机很好用,电池也耐用,拍照清楚,推荐购买!"
    assert not near.is_duplicate(review)
    # Every fourth character differs in punctuation: over half the raw 4-character shingles differ.
    assert near.is_duplicate("这个手机很好用。电池也耐用。拍照清楚。推荐购买。")
    assert near.is_duplicate("这个手机很好用 电池也耐用 拍照清楚 推荐购买!!!")
    assert not near.is_duplicate("这个手机不好用,电池不耐用,拍照模糊,不推荐购买!")
    assert not near.is_duplicate("Battery LASTS two days, the screen is bright - would buy again!")
    assert near.is_duplicate("battery lasts two days; the screen is bright... would buy again")
    # Under min_chars once punctuation is gone, however long with it: skipped.
    assert not near.is_duplicate("好!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!")
    assert not near.is_duplicate("好 . . . . . . . . . . . . . . . . . . .")


def test_near_duplicate_index_finds_copies_among_similar_rows() -> None:
    # Variants of a few base texts share LSH bands without being duplicates, so band keys hold
    # several rows; a copy that differs only in punctuation must still be found among them.
    near = NearDuplicateFilter(threshold=0.9, num_perm=128, shingle_size=4, min_chars=20)
    rng = random.Random(3)
    alphabet = "的一是不了人我在有他这为之大来以个中上们到说国和地也子时道出而要于就下得可你年生自会那后能对着"
    kept: list[str] = []
    for _ in range(8):
        base = [rng.choice(alphabet) for _ in range(60)]
        for _ in range(12):
            variant = list(base)
            for position in rng.sample(range(60), 4):
                variant[position] = rng.choice(alphabet)
            text = "".join(variant)
            if not near.is_duplicate(text):
                kept.append(text)
    assert len(kept) > 40  # most variants are further apart than the threshold
    for text in kept:
        assert near.is_duplicate(f"{text[:20]},{text[20:40]}。{text[40:]}!")
