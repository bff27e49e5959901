"""Input files (CSV, TSV, JSONL, Parquet, plain text; optionally gzipped) as streams of records.

Every reader is a generator that holds one line or one Parquet batch at a time, so a file
larger than memory streams through. A record that cannot be read yields a `Dropped` with its
location instead of raising; a file that cannot be read at all, an unknown extension or a
column that is not there raises a `DataPrepError` subclass naming the file.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import orjson

from shoplm.data.errors import ColumnError, InputFileError, SettingsError
from shoplm.data.rows import Dropped, DropReason, RawRow, Record

FORMATS = ("csv", "tsv", "jsonl", "parquet", "text")
_EXTENSIONS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".txt": "text",
    ".text": "text",
}
# A JSONL file whose first this-many objects all lack the requested column almost certainly
# names the column wrongly: that is an error, not thousands of counted drops.
COLUMN_PROBE_ROWS = 100
_PARQUET_BATCH_ROWS = 4096
# Undecodable bytes are read as lone surrogates (errors="surrogateescape") so that one bad
# row is found and counted instead of a UnicodeDecodeError ending the whole file.
_UNDECODABLE = re.compile("[\udc80-\udcff]")
# The csv module's default field limit (128 KiB) would report a long but valid review as a
# broken row; 16 MiB still stops an unterminated quote from swallowing a whole large file.
_CSV_FIELD_LIMIT = 16 * 1024 * 1024


@dataclass(frozen=True)
class InputFile:
    """A validated input: where it is, the name shown in the card, its format and size."""

    path: Path
    name: str
    format: str
    compressed: bool
    bytes: int
    encoding: str = "utf-8"


def display_name(path: Path) -> str:
    """The name of `path` for reports: relative paths as given, others relative to the cwd or bare.

    Cards never hold absolute paths, which would leak the machine's layout and make two
    otherwise identical cards differ.
    """
    if not path.is_absolute():
        return path.as_posix()
    try:
        return path.relative_to(Path.cwd()).as_posix()
    except ValueError:
        return path.name


def open_input(path: Path, format_override: str | None = None, encoding: str = "utf-8") -> InputFile:
    """Check that `path` is a readable file of a known format and describe it.

    Raises InputFileError when the file is missing or its format cannot be told from the
    extension (``.csv``, ``.tsv``, ``.jsonl``/``.ndjson``, ``.parquet``/``.pq``,
    ``.txt``/``.text``, each optionally followed by ``.gz``) and no override is given.
    """
    name = display_name(path)
    if not path.exists():
        raise InputFileError(f"{name}: no such file")
    if not path.is_file():
        raise InputFileError(f"{name}: not a regular file")
    compressed = path.suffix.lower() == ".gz"
    if format_override is not None:
        if format_override not in FORMATS:
            raise SettingsError(f"unknown format {format_override!r}; choose one of: {', '.join(FORMATS)}")
        fmt = format_override
    else:
        suffix = Path(path.stem).suffix if compressed else path.suffix
        detected = _EXTENSIONS.get(suffix.lower())
        if detected is None:
            known = ", ".join(sorted(_EXTENSIONS))
            raise InputFileError(
                f"{name}: unknown file extension {suffix or '(none)'!r}; known: {known} (optionally + .gz), "
                "or pass --format"
            )
        fmt = detected
    if compressed and fmt == "parquet":
        raise InputFileError(f"{name}: gzipped Parquet is not supported; Parquet compresses its own pages")
    return InputFile(
        path=path, name=name, format=fmt, compressed=compressed, bytes=path.stat().st_size, encoding=encoding
    )


def read_records(source: InputFile, text_column: str, label_column: str | None) -> Iterator[Record]:
    """Yield every record of `source` as a `RawRow` or, when it cannot be read, a `Dropped`.

    Plain text files hold one text per non-empty line and no labels, so a label column with
    them is a SettingsError. Raises ColumnError when the text or label column is missing from
    the file (CSV header, Parquet schema, or the first objects of a JSONL file).
    """
    try:
        if source.format in ("csv", "tsv"):
            yield from _read_csv(source, text_column, label_column)
        elif source.format == "jsonl":
            yield from _read_jsonl(source, text_column, label_column)
        elif source.format == "parquet":
            yield from _read_parquet(source, text_column, label_column)
        else:
            if label_column is not None:
                raise SettingsError(
                    f"{source.name}: plain text files have no columns, so --label-column cannot apply; "
                    "use CSV, JSONL or Parquet for labelled data"
                )
            yield from text_line_rows(source)
    except (OSError, EOFError) as error:
        # A truncated gzip stream or a disk error: the rest of the file is unknowable.
        raise InputFileError(f"{source.name}: cannot be read: {error}") from error


def read_text_lines(source: InputFile) -> Iterator[tuple[int, str] | Dropped]:
    """Yield ``(line_number, line)`` for each line, or a `Dropped` for a blank or undecodable one.

    Blank lines are counted as ``empty`` drops, so that the records of a file add up to its lines.
    """
    with _open_text(source) as handle:
        for number, line in enumerate(handle, start=1):
            line = line.rstrip("\r\n")
            if not line.strip():
                yield Dropped(DropReason.EMPTY, f"{source.name}:{number}")
            elif _UNDECODABLE.search(line):
                yield Dropped(DropReason.BAD_ENCODING, f"{source.name}:{number}")
            else:
                yield number, line


def is_utf8(encoding: str) -> bool:
    """Whether `encoding` names UTF-8 under any of its aliases ("utf8", "UTF-8", ...)."""
    return codecs.lookup(encoding).name == "utf-8"


def _open_text(source: InputFile, newline: str | None = None) -> IO[str]:
    # utf-8-sig drops a byte order mark, which spreadsheet exports like to add.
    encoding = "utf-8-sig" if is_utf8(source.encoding) else source.encoding
    if source.compressed:
        return gzip.open(source.path, "rt", encoding=encoding, errors="surrogateescape", newline=newline)
    return source.path.open(encoding=encoding, errors="surrogateescape", newline=newline)


def text_line_rows(
    source: InputFile, label: int | None = None, transform: Callable[[str], str] | None = None
) -> Iterator[Record]:
    """One row a line of a text file (``transform`` applied), all with ``label``; drops pass through."""
    for item in read_text_lines(source):
        if isinstance(item, Dropped):
            yield item
        else:
            number, line = item
            text = transform(line) if transform is not None else line
            yield RawRow(text=text, label=label, where=f"{source.name}:{number}")


def _read_csv(source: InputFile, text_column: str, label_column: str | None) -> Iterator[Record]:
    csv.field_size_limit(max(csv.field_size_limit(), _CSV_FIELD_LIMIT))
    delimiter = "\t" if source.format == "tsv" else ","
    with _open_text(source, newline="") as handle:
        reader = csv.reader(handle, delimiter=delimiter)
        try:
            header = next(reader)
        except StopIteration:
            raise ColumnError(source.name, text_column, "text", [], detail="is empty (no header row)") from None
        except csv.Error as error:
            raise InputFileError(f"{source.name}: the header row is not valid CSV: {error}") from None
        text_index = _column_index(source.name, header, text_column, "text")
        label_index = None if label_column is None else _column_index(source.name, header, label_column, "label")
        while True:
            try:
                fields = next(reader)
            except StopIteration:
                return
            except csv.Error:
                yield Dropped(DropReason.BAD_CSV_ROW, f"{source.name}:{reader.line_num}")
                continue
            where = f"{source.name}:{reader.line_num}"
            if not fields:
                yield Dropped(DropReason.EMPTY, where)
            elif len(fields) != len(header):
                yield Dropped(DropReason.BAD_CSV_ROW, where)
            elif any(_UNDECODABLE.search(field) for field in fields):
                yield Dropped(DropReason.BAD_ENCODING, where)
            else:
                label = None if label_index is None else fields[label_index]
                yield RawRow(text=fields[text_index], label=label, where=where)


def _column_index(file: str, header: list[str], column: str, role: str) -> int:
    names = [name.strip() for name in header]
    if column not in names:
        if any(_UNDECODABLE.search(name) for name in names):
            detail = (
                f"has no {role} column {column!r}, and its header is not valid in the encoding read "
                "(pass --encoding, e.g. gb18030 for a Chinese spreadsheet export)"
            )
            raise ColumnError(file, column, role, names, detail=detail)
        raise ColumnError(file, column, role, names)
    if names.count(column) > 1:
        detail = f"has {names.count(column)} columns named {column!r}, so the {role} column is ambiguous"
        raise ColumnError(file, column, role, names, detail=detail)
    return names.index(column)


def _read_jsonl(source: InputFile, text_column: str, label_column: str | None) -> Iterator[Record]:
    wanted = [text_column] if label_column is None else [text_column, label_column]
    found: set[str] = set()
    keys_seen: dict[str, None] = {}
    # Objects read before every wanted column has been seen at least once, held back so that
    # a wrong column name raises before anything is yielded.
    pending: list[tuple[str, dict[str, object]]] = []
    for item in read_text_lines(source):
        if isinstance(item, Dropped):
            yield item
            continue
        number, line = item
        where = f"{source.name}:{number}"
        try:
            value = orjson.loads(line)
        except orjson.JSONDecodeError:
            yield Dropped(DropReason.MALFORMED_JSON, where)
            continue
        if not isinstance(value, dict):
            yield Dropped(DropReason.MALFORMED_JSON, where)
            continue
        if len(found) < len(wanted):
            keys_seen.update(dict.fromkeys(value))
            found.update(column for column in wanted if column in value)
            pending.append((where, value))
            if len(found) == len(wanted):
                yield from (_json_record(w, v, text_column, label_column) for w, v in pending)
                pending.clear()
            elif len(pending) >= COLUMN_PROBE_ROWS:
                _raise_missing_json_column(source.name, wanted, found, keys_seen)
            continue
        yield _json_record(where, value, text_column, label_column)
    if pending:
        _raise_missing_json_column(source.name, wanted, found, keys_seen)


def _raise_missing_json_column(file: str, wanted: list[str], found: set[str], keys_seen: dict[str, None]) -> None:
    missing = next(column for column in wanted if column not in found)
    role = "text" if missing == wanted[0] else "label"
    raise ColumnError(file, missing, role, list(keys_seen))


def _json_record(where: str, value: dict[str, object], text_column: str, label_column: str | None) -> Record:
    if text_column not in value:
        return Dropped(DropReason.MISSING_TEXT_COLUMN, where)
    label = None if label_column is None else value.get(label_column)
    return RawRow(text=value[text_column], label=label, where=where)


def _holds_text(arrow_type: Any) -> bool:
    """Whether a Parquet column's values read as strings: any Arrow string layout, all nulls, or
    strings dictionary-encoded (how pandas writes a ``category`` column)."""
    import pyarrow as pa

    if pa.types.is_dictionary(arrow_type):
        arrow_type = arrow_type.value_type
    return bool(
        pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type)
        or pa.types.is_string_view(arrow_type) or pa.types.is_null(arrow_type)
    )


def _read_parquet(source: InputFile, text_column: str, label_column: str | None) -> Iterator[Record]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(source.path)
    except (pa.ArrowException, OSError) as error:
        raise InputFileError(f"{source.name}: not a readable Parquet file: {error}") from None
    schema = parquet.schema_arrow
    _column_index(source.name, schema.names, text_column, "text")
    text_type = schema.field(text_column).type
    if not _holds_text(text_type):
        detail = f"text column {text_column!r} holds {text_type}, not strings"
        raise ColumnError(source.name, text_column, "text", schema.names, detail=detail)
    columns = [text_column]
    if label_column is not None:
        _column_index(source.name, schema.names, label_column, "label")
        columns.append(label_column)
    number = 0
    try:
        for batch in parquet.iter_batches(batch_size=_PARQUET_BATCH_ROWS, columns=columns):
            texts = batch.column(0).to_pylist()
            labels = batch.column(1).to_pylist() if label_column is not None else [None] * len(texts)
            for text, label in zip(texts, labels, strict=True):
                number += 1
                yield RawRow(text="" if text is None else text, label=label, where=f"{source.name}:row {number}")
    except pa.ArrowException as error:
        raise InputFileError(f"{source.name}: Parquet data unreadable after row {number}: {error}") from None

