"""Chinese word segmentation with jieba."""

from __future__ import annotations

from pathlib import Path

import jieba

from shoplm.textproc.config import SegmentConfig


class Segmenter:
    """Splits text into words with a private jieba dictionary.

    Each instance owns its `jieba.Tokenizer`, so a user dictionary loaded for one model never
    changes how another model's text is segmented. The dictionary is loaded here, once; after
    that `segment` only reads it and may be called from several threads at once.
    """

    def __init__(self, config: SegmentConfig) -> None:
        """Load jieba's dictionary and `config.user_dict`; FileNotFoundError if that is missing."""
        self._config = config
        self._tokenizer = jieba.Tokenizer()
        self._tokenizer.initialize()
        if config.user_dict is not None:
            self._load_user_dict(config.user_dict)

    def _load_user_dict(self, path: Path) -> None:
        if not path.is_file():
            raise FileNotFoundError(f"segment.user_dict: no such file: {path}")
        with path.open("rb") as user_dict:
            try:
                self._tokenizer.load_userdict(user_dict)
            except ValueError as error:
                raise ValueError(f"segment.user_dict {path}: {error}") from error

    def segment(self, text: str) -> str:
        """Return `text` as words joined by the configured separator.

        Whitespace between words is dropped rather than kept as a word of its own, so that
        segmenting already segmented text does not pile up separators.
        """
        return self._config.separator.join(self.words(text))

    def words(self, text: str) -> list[str]:
        """The words of `text`, in order, without whitespace-only ones."""
        return [word for word in self._tokenizer.cut(text, HMM=self._config.hmm) if not word.isspace()]
