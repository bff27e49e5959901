"""Character-level text normalization."""

from __future__ import annotations

import re
import unicodedata

from shoplm.textproc.config import NormalizeConfig

# Full-width forms U+FF01..U+FF5E are ASCII U+0021..U+007E shifted by a constant.
_FULLWIDTH_OFFSET = 0xFF01 - 0x21
_FULLWIDTH_TO_ASCII = {code: code - _FULLWIDTH_OFFSET for code in range(0xFF01, 0xFF5F)}
_FULLWIDTH_TO_ASCII[0x3000] = ord(" ")

# Cc: control, Cf: format (zero-width space/joiners, BOM, bidi marks, soft hyphen),
# Cs: lone surrogates, which cannot even be encoded as UTF-8.
_REMOVED_CATEGORIES = frozenset({"Cc", "Cf", "Cs"})

_WHITESPACE_RUN = re.compile(r"\s+")


def _strip_control(text: str) -> str:
    kept = []
    for char in text:
        if unicodedata.category(char) not in _REMOVED_CATEGORIES:
            kept.append(char)
        elif char.isspace():
            # Newline, tab and the like separate words, so they become spaces, not nothing.
            kept.append(" ")
    return "".join(kept)


def normalize_text(text: str, config: NormalizeConfig) -> str:
    """Apply the cleanup steps `config` enables to `text` and return the result.

    The order makes the function idempotent: control characters go first, so that removing a
    zero-width character cannot leave a sequence that unicode normalization would compose on
    a second pass; full-width mapping precedes NFC/NFD for the same reason.
    """
    if config.strip_control:
        text = _strip_control(text)
    if config.fullwidth_to_halfwidth:
        text = text.translate(_FULLWIDTH_TO_ASCII)
    if config.unicode_form is not None:
        text = unicodedata.normalize(config.unicode_form, text)
    if config.collapse_whitespace:
        text = _WHITESPACE_RUN.sub(" ", text).strip()
    if config.lowercase:
        text = text.lower()
        if config.unicode_form is not None:
            # Lowercasing can undo normalization (Greek capitals with diacritics decompose).
            text = unicodedata.normalize(config.unicode_form, text)
    return text
