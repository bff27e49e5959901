"""External knowledge: a lexicon of retail terms for jieba and for tokenizers.

Lexicon file format (jieba's user-dictionary format, UTF-8): one term per line, optionally
followed by a frequency (digits) and a part-of-speech tag, separated by whitespace; blank
lines and lines starting with ``#`` are ignored::

    # brands and product words
    蓝牙耳机 3000 n
    七天无理由退货 n
    air fryer

A last word that is a jieba part-of-speech tag (``n``, ``nz``, ``v``, ``eng``, ...) is read
as the tag, and a number before it (or last) as the frequency, so a term cannot end in a
separate number or tag-like word; other words belong to the term (``air fryer``). Terms are
normalized with the data pipeline's normalization, so they match the prepared text; the
first occurrence of a term wins, and a line that normalization empties (control characters)
is counted and skipped.

Outputs: ``jieba_userdict.txt`` (for `SegmentConfig.user_dict`; terms with spaces are left
out because jieba splits text at spaces before it looks words up) and ``added_tokens.json``
(a list of `tokenizers.AddedToken` arguments: ``[AddedToken(**entry) for entry in ...]``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from shoplm.data.errors import InputFileError
from shoplm.data.output import make_output_dir
from shoplm.data.readers import display_name
from shoplm.textproc.config import NormalizeConfig
from shoplm.textproc.normalize import normalize_text

if TYPE_CHECKING:
    from tokenizers import AddedToken

JIEBA_USERDICT = "jieba_userdict.txt"
ADDED_TOKENS = "added_tokens.json"
# The part-of-speech tags of jieba's dictionary (ICTCLAS), the only words read as a tag.
POS_TAGS = frozenset(
    (
        *("a", "ad", "ag", "an", "b", "c", "d", "df", "dg", "e", "eng", "f", "g", "h", "i", "j", "k", "l"),
        *("m", "mg", "mq", "n", "ng", "nr", "nrfg", "nrt", "ns", "nt", "nz", "o", "p", "q", "r", "rg", "rr"),
        *("rz", "s", "t", "tg", "u", "ud", "ug", "uj", "ul", "uv", "uz", "v", "vd", "vg", "vi", "vn", "vq"),
        *("x", "y", "z", "zg"),
    )
)
_ASCII_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9 '&+.-]*")


@dataclass(frozen=True)
class LexiconEntry:
    """One term with its optional jieba frequency and part-of-speech tag."""

    term: str
    freq: int | None = None
    tag: str | None = None


@dataclass(frozen=True)
class Lexicon:
    """The entries of a lexicon file, and how many lines repeated an earlier term or held none."""

    entries: list[LexiconEntry]
    duplicates: int
    empty: int = 0  # lines whose term normalization leaves empty (control characters, say)


def read_lexicon(path: Path, normalize: NormalizeConfig | None = None) -> Lexicon:
    """Parse a lexicon file; InputFileError when it is missing or not UTF-8."""
    normalize = normalize or NormalizeConfig()
    name = display_name(path)
    if not path.is_file():
        raise InputFileError(f"lexicon {name}: no such file")
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError as error:
        raise InputFileError(f"lexicon {name}: not UTF-8 text ({error})") from None
    entries: dict[str, LexiconEntry] = {}
    duplicates = empty = 0
    for line in lines:
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        words = stripped.split()
        tag = words.pop() if len(words) > 1 and words[-1] in POS_TAGS else None
        freq = int(words.pop()) if len(words) > 1 and words[-1].isascii() and words[-1].isdigit() else None
        term = normalize_text(" ".join(words), normalize)
        if not term:
            empty += 1
            continue
        if term in entries:
            duplicates += 1
            continue
        entries[term] = LexiconEntry(term=term, freq=freq, tag=tag)
    return Lexicon(entries=list(entries.values()), duplicates=duplicates, empty=empty)


def jieba_userdict_lines(lexicon: Lexicon) -> list[str]:
    """The lines of a jieba user dictionary: ``term [freq] [tag]`` for every term without spaces.

    A term without a frequency gets none, so jieba picks one just high enough to keep the term
    whole (its ``suggest_freq``).
    """
    lines = []
    for entry in lexicon.entries:
        if any(char.isspace() for char in entry.term):
            continue
        fields = [entry.term]
        if entry.freq is not None:
            fields.append(str(entry.freq))
        if entry.tag is not None:
            fields.append(entry.tag)
        lines.append(" ".join(fields))
    return lines


def added_token_entries(lexicon: Lexicon) -> list[dict[str, Any]]:
    """`tokenizers.AddedToken` keyword arguments for every term.

    Latin-script terms match whole words only (``single_word``), so a brand such as "Pro"
    does not split "Product"; Chinese has no spaces between words, so its terms match anywhere.
    """
    return [
        {
            "content": entry.term,
            "single_word": _ASCII_WORD.fullmatch(entry.term) is not None,
            "lstrip": False,
            "rstrip": False,
            "normalized": True,
            "special": False,
        }
        for entry in lexicon.entries
    ]


def write_lexicon_outputs(path: Path, out_dir: Path, normalize: NormalizeConfig | None = None) -> dict[str, Any]:
    """Write ``jieba_userdict.txt`` and ``added_tokens.json`` from the lexicon at `path` into `out_dir`.

    Returns the summary recorded in the dataset card.
    """
    lexicon = read_lexicon(path, normalize)
    make_output_dir(out_dir)
    jieba_lines = jieba_userdict_lines(lexicon)
    (out_dir / JIEBA_USERDICT).write_text("".join(line + "\n" for line in jieba_lines), encoding="utf-8")
    tokens = added_token_entries(lexicon)
    (out_dir / ADDED_TOKENS).write_bytes(orjson.dumps(tokens, option=orjson.OPT_INDENT_2) + b"\n")
    return {
        "source": display_name(path),
        "terms": len(lexicon.entries),
        "duplicate_lines": lexicon.duplicates,
        "empty_lines": lexicon.empty,
        "jieba_userdict": JIEBA_USERDICT,
        "jieba_terms": len(jieba_lines),
        "added_tokens": ADDED_TOKENS,
    }


def load_added_tokens(path: Path) -> list[AddedToken]:
    """The `tokenizers.AddedToken` objects of an ``added_tokens.json`` written here."""
    from tokenizers import AddedToken

    return [AddedToken(**entry) for entry in orjson.loads(path.read_bytes())]
