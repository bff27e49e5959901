"""The records that flow from the readers into the pipeline, and the reasons a row is dropped."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class DropReason(StrEnum):
    """Why a row did not reach the output; every dropped row is counted under one of these."""

    BAD_ENCODING = "bad_encoding"  # the row's bytes are not UTF-8
    MALFORMED_JSON = "malformed_json"  # a JSONL line that does not parse, or is not an object
    BAD_CSV_ROW = "bad_csv_row"  # a CSV row with the wrong number of fields or broken quoting
    MISSING_TEXT_COLUMN = "missing_text_column"  # the record lacks the text column
    BAD_TEXT_TYPE = "bad_text_type"  # the text value is not a string (a number, a list, ...)
    MISSING_LABEL = "missing_label"  # the label column is absent, null or blank in this row
    BAD_LABEL = "bad_label"  # a label that is not a class (a list, a fraction, a rating outside 1-5)
    NEUTRAL_RATING = "neutral_rating"  # --label-from-rating: a rating strictly between 2 and 4
    EMPTY = "empty"  # nothing left after normalization
    HTML_ONLY = "html_only"  # markup whose visible text is empty
    TOO_LONG = "too_long"  # more characters than max_chars after cleaning
    EXACT_DUPLICATE = "exact_duplicate"  # same normalized text (and label) as an earlier row
    CONFLICTING_LABEL = "conflicting_label"  # same normalized text seen with different labels
    NEAR_DUPLICATE = "near_duplicate"  # MinHash-similar to an earlier kept row


@dataclass(frozen=True, slots=True)
class RawRow:
    """One record as read: the text and label values before any cleaning.

    `where` locates it for the card's examples, e.g. ``reviews.csv:17`` (a line) or
    ``items.parquet:row 3``.
    """

    text: object
    label: object
    where: str


@dataclass(frozen=True, slots=True)
class Dropped:
    """A record that could not be read, with the reason and its location."""

    reason: DropReason
    where: str


Record = RawRow | Dropped
