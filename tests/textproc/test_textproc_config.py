"""PreprocessConfig validation and its preprocessing.json round trip."""

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic import ValidationError

from shoplm.textproc import (
    NormalizeConfig,
    PaddingConfig,
    PreprocessConfig,
    SegmentConfig,
    TruncateConfig,
)


def test_defaults_are_valid() -> None:
    config = PreprocessConfig()

    assert config.normalize == NormalizeConfig(
        unicode_form="NFKC",
        fullwidth_to_halfwidth=True,
        strip_control=True,
        collapse_whitespace=True,
        lowercase=False,
    )
    assert config.segment == SegmentConfig(enabled=False, user_dict=None, hmm=True, separator=" ")
    assert config.truncate == TruncateConfig(
        unit="tokens", max_length=None, strategy="head", head_fraction=0.5, on_overflow="truncate"
    )
    assert config.padding == PaddingConfig(strategy="longest", length=None, buckets=[], max_length=512, side="right")
    assert config.add_special_tokens is True


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: TruncateConfig(max_length=-1), r"max_length\n  Input should be greater than 0"),
        (lambda: TruncateConfig(max_length=0), r"max_length\n  Input should be greater than 0"),
        (lambda: TruncateConfig(head_fraction=1.5), r"head_fraction\n  Input should be less than 1"),
        (lambda: TruncateConfig(head_fraction=0), r"head_fraction\n  Input should be greater than 0"),
        (lambda: TruncateConfig(strategy="middle"), r"strategy\n  Input should be 'head', 'tail'"),
        (lambda: PaddingConfig(max_length=0), r"max_length\n  Input should be greater than 0"),
        (lambda: PaddingConfig(strategy="fixed"), "length is required when strategy is 'fixed'"),
        (
            lambda: PaddingConfig(length=8),
            "length is only used when strategy is 'fixed', not 'longest'",
        ),
        (
            lambda: PaddingConfig(strategy="fixed", length=600),
            "length=600 exceeds max_length=512",
        ),
        (
            lambda: PaddingConfig(strategy="bucket", buckets=[64, 32]),
            r"buckets\n  Value error, buckets must be strictly ascending, got \[64, 32\]",
        ),
        (
            lambda: PaddingConfig(strategy="bucket", buckets=[32, 32]),
            "buckets must be strictly ascending",
        ),
        (lambda: PaddingConfig(strategy="bucket"), "buckets must list at least one length"),
        (
            lambda: PaddingConfig(strategy="bucket", buckets=[256, 1024]),
            "buckets up to 1024 exceed max_length=512",
        ),
        (lambda: PaddingConfig(buckets=[8]), "buckets are only used when strategy is 'bucket'"),
        (lambda: PaddingConfig(side="top"), r"side\n  Input should be 'right' or 'left'"),
        (lambda: SegmentConfig(separator=""), r"separator\n  String should have at least 1"),
        (lambda: NormalizeConfig(unicode_form="NFX"), r"unicode_form\n  Input should be 'NFKC'"),
        (lambda: PreprocessConfig(colour="red"), r"colour\n  Extra inputs are not permitted"),
    ],
)
def test_invalid_values_name_the_field(build: Callable[[], object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        build()


def test_unknown_nested_field_names_its_path() -> None:
    with pytest.raises(ValidationError, match=r"padding\.max_len\n  Extra inputs are not permitted"):
        PreprocessConfig.model_validate({"padding": {"max_len": 128}})


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    # given a config that differs from the defaults everywhere
    config = PreprocessConfig(
        normalize=NormalizeConfig(unicode_form=None, lowercase=True),
        segment=SegmentConfig(enabled=True, user_dict=tmp_path / "words.txt", separator="|"),
        truncate=TruncateConfig(unit="chars", max_length=300, strategy="head_tail", head_fraction=0.25),
        padding=PaddingConfig(strategy="bucket", buckets=[32, 64], max_length=128, side="left"),
        add_special_tokens=False,
    )

    # when saved into a model directory that does not exist yet
    path = config.save(tmp_path / "model")

    # then it is preprocessing.json there, and reads back equal from the directory or the file
    assert path == tmp_path / "model" / "preprocessing.json"
    assert PreprocessConfig.load(tmp_path / "model") == config
    assert PreprocessConfig.load(path) == config


def test_saved_file_is_plain_json(tmp_path: Path) -> None:
    path = PreprocessConfig().save(tmp_path)

    saved = json.loads(path.read_text(encoding="utf-8"))

    assert saved["padding"] == {
        "strategy": "longest",
        "length": None,
        "buckets": [],
        "max_length": 512,
        "side": "right",
    }


def test_relative_user_dict_is_resolved_next_to_the_file(tmp_path: Path) -> None:
    # given a saved config whose user dictionary path is relative
    config = PreprocessConfig(segment=SegmentConfig(enabled=True, user_dict=Path("words.txt")))
    path = config.save(tmp_path / "model")

    # when
    loaded = PreprocessConfig.load(path)

    # then the path points into the model directory
    assert loaded.segment.user_dict == tmp_path / "model" / "words.txt"


def test_load_missing_file_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=f"no preprocessing config at {tmp_path}/preprocessing.json"):
        PreprocessConfig.load(tmp_path)


def test_load_rejects_an_invalid_file(tmp_path: Path) -> None:
    (tmp_path / "preprocessing.json").write_text('{"truncate": {"head_fraction": 2}}')

    with pytest.raises(ValidationError, match=r"truncate\.head_fraction"):
        PreprocessConfig.load(tmp_path)
