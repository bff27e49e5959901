"""Errors of data preparation that are the user's to fix (a file, a column, an option).

A problem with one row never raises: it becomes a counted drop in the dataset card. These
exceptions are for problems that make the whole run meaningless, and their message names the
file, column or option and what would be valid instead.
"""

from __future__ import annotations

from collections.abc import Sequence


class DataPrepError(ValueError):
    """Base class: a user error in a data preparation request; the message says what to fix."""


class InputFileError(DataPrepError):
    """An input file is missing, has an unknown format, or cannot be read as its format."""


class ColumnError(DataPrepError):
    """A requested column is not in an input file; the message lists the columns that are."""

    def __init__(self, file: str, column: str, role: str, available: Sequence[str], detail: str = "") -> None:
        self.file = file
        self.column = column
        self.available = list(available)
        listed = ", ".join(repr(name) for name in self.available) if self.available else "none"
        reason = detail or f"has no {role} column {column!r}"
        super().__init__(f"{file}: {reason}; columns found: {listed}")


class SettingsError(DataPrepError):
    """An option value or a combination of options is invalid."""
