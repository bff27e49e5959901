"""Generated input files, well-formed and broken, through `prepare_files`.

Whatever a file holds, preparation either stops with a DataPrepError that names the problem (a
missing column, a label column asked of a text file) or accounts for every row it read: each one
is kept in exactly one split or counted as a drop.
"""

from __future__ import annotations

import csv
import io
import json
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from shoplm.data import DataPrepError, PrepareSettings, prepare_files
from shoplm.data.labels import MAX_CLASS_ID

TEXTS = st.one_of(
    st.text(alphabet=st.sampled_from("好差很不错质量一般快递慢 ,.\"'\\<>b/\t"), max_size=30),
    st.text(max_size=30),
)
JSON_VALUES = st.one_of(st.none(), st.booleans(), st.integers(-3, 7), st.integers(), st.floats(allow_nan=True), TEXTS,
                        st.lists(st.integers(), max_size=2))


def _json_line(row: dict[str, object]) -> str:
    return json.dumps(row, ensure_ascii=False)


JSONL_LINES = st.one_of(
    st.builds(lambda text, label: _json_line({"text": text, "label": label}), TEXTS, JSON_VALUES),
    st.builds(lambda value: _json_line({"text": value}), JSON_VALUES),
    st.builds(lambda value: json.dumps(value), JSON_VALUES),  # valid JSON, not an object
    TEXTS,  # not JSON at all, or by chance a JSON string
)
CSV_LINES = st.one_of(
    st.builds(lambda text, label: f"{text},{label}", TEXTS, st.sampled_from(["0", "1", "5", "3", "x", ""])),
    TEXTS,
)


@st.composite
def input_files(draw: st.DrawFn) -> tuple[str, bytes]:
    """A file name and its bytes: JSONL, CSV or text lines, sometimes with undecodable bytes."""
    kind = draw(st.sampled_from(["jsonl", "csv", "txt"]))
    if kind == "jsonl":
        lines = draw(st.lists(JSONL_LINES, max_size=12))
    elif kind == "csv":
        header = draw(st.sampled_from(["text,label", "label,text", "text", "review,label"]))
        lines = [header, *draw(st.lists(CSV_LINES, max_size=12))]
    else:
        lines = draw(st.lists(TEXTS, max_size=12))
    data = "\n".join(lines).encode("utf-8")
    if draw(st.booleans()):
        cut = draw(st.integers(0, len(data)))
        data = data[:cut] + draw(st.sampled_from([b"\xff", b"\xc3", b"\x00", b"\r", b"\xef\xbb\xbf"])) + data[cut:]
    return f"input.{kind}", data


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(file=input_files(), labelled=st.booleans(), from_rating=st.booleans())
def test_every_row_read_is_kept_once_or_counted_as_dropped(
    file: tuple[str, bytes], labelled: bool, from_rating: bool
) -> None:
    name, content = file
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        (root / name).write_bytes(content)
        options = PrepareSettings(label_column="label" if labelled else None,
                                  label_from_rating=labelled and from_rating, near_dup=False)
        try:
            card = prepare_files([root / name], root / "out", options)
        except DataPrepError as error:
            assert str(error).strip()  # a message for the user, not an empty error
            event(f"{type(error).__name__}")
            return

        assert card.rows_read == _rows_in(root / name)  # no row left unread or read twice
        kept = sum(len((root / "out" / f"{split}.jsonl").read_bytes().splitlines())
                   for split in ("train", "validation", "test"))
        assert card.rows_kept == kept
        event("rows kept" if kept else "no rows kept")
        assert card.rows_read == card.rows_kept + card.rows_dropped == card.rows_kept + sum(card.drops.values())
        for split in ("train", "validation", "test"):
            for line in (root / "out" / f"{split}.jsonl").read_text(encoding="utf-8").splitlines():
                row = json.loads(line)
                assert isinstance(row["text"], str) and row["text"].strip()
                assert not labelled or 0 <= row["label"] <= MAX_CLASS_ID


def _rows_in(path: Path) -> int:
    """The rows a file holds by its format's own rules: lines (any line ending), CSV records after the header."""
    text = path.read_bytes().decode("utf-8", errors="surrogateescape").removeprefix("\ufeff")
    if path.suffix == ".csv":
        return max(0, len(list(csv.reader(io.StringIO(text, newline="")))) - 1)
    return len(io.StringIO(text, newline=None).readlines())
