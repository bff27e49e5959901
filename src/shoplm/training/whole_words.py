"""Word boundaries over WordPiece token ids, for whole-word masking in ``mlm`` and ``rtd`` runs.

A character-level vocabulary gives one token per Chinese character, so masking single tokens
often hides a character that the rest of its word gives away (with 屏 of 屏幕, "screen", left
in view, the masked 幕 is easy). Whole-word masking (as in Chinese BERT-wwm) masks every token of
a chosen word together. Words come from jieba for each run of Chinese-character tokens, and from
WordPiece's own pieces elsewhere: a continuation piece ("##...") belongs to the word of the token
before it.
"""

from __future__ import annotations

from itertools import groupby

import torch
from tokenizers import models
from transformers import PreTrainedTokenizerBase

from shoplm.textproc import SegmentConfig
from shoplm.textproc.segment import Segmenter
from shoplm.training.models import ModelSpecError

# The CJK ideograph blocks BERT's tokenizer splits into single characters.
_CJK_RANGES = (
    (0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F),
    (0x2B740, 0x2B81F), (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F),
)


def is_cjk_character(token: str) -> bool:
    """True for a token that is one CJK ideograph."""
    return len(token) == 1 and any(low <= ord(token) <= high for low, high in _CJK_RANGES)


class WholeWordStarts:
    """Maps a batch of token ids to the position of each token's word's first token.

    Every token of one word gets the same number, so per-position random draws gathered through
    it (``draws.gather(1, starts)``) are equal across the word: see
    :class:`shoplm.modeling.masked_lm.TokenMasking`. Special tokens and padding are words of
    their own. The result depends on the ids alone (no randomness), so it may be computed in the
    data loader without upsetting exact resume.
    """

    def __init__(self, tokenizer: PreTrainedTokenizerBase, segment: SegmentConfig | None = None) -> None:
        backend = getattr(tokenizer, "backend_tokenizer", None)
        if backend is None or not isinstance(backend.model, models.WordPiece):
            raise ModelSpecError(
                "training.whole_word_masking needs a WordPiece tokenizer (tokenizer.kind: wordpiece); "
                "byte-level BPE pieces do not show where Chinese words start"
            )
        vocabulary = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
        special = set(tokenizer.all_special_ids)
        # Per id, once: special tokens read as "" (a word of their own, never joined).
        self._tokens = ["" if index in special else token or "" for index, token in enumerate(vocabulary)]
        self._is_cjk = [is_cjk_character(token) for token in self._tokens]
        # The model's segment settings (its user dictionary, HMM) decide the words, whether or not
        # its preprocessing segments text itself.
        self._segmenter = Segmenter(segment if segment is not None else SegmentConfig())

    def row(self, ids: list[int]) -> list[int]:
        """The word-start position of each token in one sequence."""
        starts = list(range(len(ids)))
        position = 0
        for cjk, run in groupby(ids, key=self._is_cjk.__getitem__):
            pieces = [self._tokens[i] for i in run]
            if cjk:
                start = position
                for word in self._segmenter.words("".join(pieces)):
                    starts[start:start + len(word)] = [start] * len(word)
                    start += len(word)
            else:
                for offset, piece in enumerate(pieces, start=position):
                    if piece.startswith("##") and offset > 0 and self._tokens[ids[offset - 1]]:
                        starts[offset] = starts[offset - 1]
            position += len(pieces)
        return starts

    def __call__(self, input_ids: torch.Tensor) -> torch.Tensor:
        """``[batch, length]`` ids to ``[batch, length]`` word-start positions."""
        return torch.tensor([self.row(row) for row in input_ids.tolist()], dtype=torch.long).reshape(input_ids.shape)
