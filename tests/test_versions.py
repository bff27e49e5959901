"""Version order in the model repository: what `latest` serves and what `shoplm publish` numbers next."""

from __future__ import annotations

from pathlib import Path

import pytest

from shoplm.serving.loading import ModelSourceError, latest_version
from shoplm.training.publish import next_version
from shoplm.versions import version_number


def versions(tmp_path: Path, *names: str) -> Path:
    for name in names:
        (tmp_path / "model" / name).mkdir(parents=True)
    return tmp_path / "model"


@pytest.mark.parametrize(
    ("name", "number"), [("3", (3,)), ("1.5", (1, 5)), ("010", (10,)), ("staging", None), ("1.", None), ("v2", None)]
)
def test_only_dot_separated_numbers_are_version_numbers(name: str, number: tuple[int, ...] | None) -> None:
    assert version_number(name) == number


def test_latest_is_the_highest_number_and_a_named_version_never_overtakes_it(tmp_path: Path) -> None:
    directory = versions(tmp_path, "1", "9", "10", "2.5", "staging", "zz", ".publishing-11")

    assert latest_version(directory) == "10"
    assert next_version(directory) == "11"


def test_the_next_version_is_one_above_the_whole_part_of_the_highest(tmp_path: Path) -> None:
    assert next_version(versions(tmp_path, "2.5", "staging")) == "3"
    assert next_version(tmp_path / "missing") == "1"


def test_only_named_versions_leave_latest_undefined_and_say_so(tmp_path: Path) -> None:
    directory = versions(tmp_path, "staging", "canary")

    with pytest.raises(ModelSourceError, match=r"no numbered versions .* only canary, staging; 'latest' picks"):
        latest_version(directory)
    assert next_version(directory) == "1"
