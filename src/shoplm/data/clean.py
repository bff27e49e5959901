"""Cleaning one text: HTML stripped, the shared normalization applied, length checked."""

from __future__ import annotations

import re
import warnings

from shoplm.data.rows import DropReason
from shoplm.textproc.config import NormalizeConfig
from shoplm.textproc.normalize import normalize_text

# Parsing every text with BeautifulSoup would cost more than all other steps together, and
# almost no text has markup; this cheap test picks out the ones that might: a tag that
# starts with an ASCII letter, "/", "!" or "?", or a named or numeric character entity.
_LOOKS_LIKE_HTML = re.compile(r"<[A-Za-z!/?][^<>]*>|&(?:[A-Za-z][A-Za-z0-9]{1,31}|#[0-9]{1,7}|#[xX][0-9A-Fa-f]{1,6});")
# Elements whose content is code or metadata, never visible text.
_INVISIBLE_TAGS = ("script", "style", "template", "head")
# Phrasing elements: a browser runs their text on with its neighbours', so "<b>非常</b>满意" is
# one phrase, and a space inside it would split its words and character n-grams. The text of
# every other element (blocks, <br>, table cells, and tags HTML does not know) is set apart.
_INLINE_TAGS = frozenset(
    {
        "a", "abbr", "b", "bdi", "bdo", "big", "cite", "code", "data", "del", "dfn", "em", "font", "i", "ins",
        "kbd", "mark", "q", "s", "samp", "small", "span", "strike", "strong", "sub", "sup", "time", "tt", "u",
        "var",
    }
)


def looks_like_html(text: str) -> bool:
    """Whether `text` contains something that may be a tag or a character entity."""
    return _LOOKS_LIKE_HTML.search(text) is not None


def strip_html(text: str) -> str:
    """The visible text of `text` parsed as HTML (html.parser): tags removed, entities decoded.

    The text of each element is set apart with a space, so that ``a<br>b`` does not become one
    word, except for inline (phrasing) markup, whose text runs on as a browser shows it. The
    normalization afterwards collapses the spaces.
    """
    from bs4 import BeautifulSoup, MarkupResemblesLocatorWarning

    with warnings.catch_warnings():
        # A short review that happens to look like a URL or a file name is still just text.
        warnings.simplefilter("ignore", MarkupResemblesLocatorWarning)
        soup = BeautifulSoup(text, "html.parser")
    for element in soup(_INVISIBLE_TAGS):
        element.decompose()
    for element in soup.find_all(True):
        if element.name in _INLINE_TAGS:
            continue
        element.insert_before(" ")
        element.insert_after(" ")
    return soup.get_text()


def clean_text(
    raw: str, normalize: NormalizeConfig, max_chars: int, remove_html: bool = True
) -> tuple[str, DropReason | None]:
    """Return ``(cleaned, None)``, or ``("", reason)`` when the row is to be dropped.

    Steps: HTML stripping (only when the text looks like markup), then `normalize_text`
    with `normalize`; the result must be non-empty and at most `max_chars` characters.
    """
    had_markup = False
    if remove_html and looks_like_html(raw):
        had_markup = True
        raw = strip_html(raw)
    text = normalize_text(raw, normalize)
    if not text:
        return "", DropReason.HTML_ONLY if had_markup else DropReason.EMPTY
    if len(text) > max_chars:
        return "", DropReason.TOO_LONG
    return text, None
