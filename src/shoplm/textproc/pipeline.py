"""The one text pipeline shared by training and serving."""

from __future__ import annotations

import copy
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

import torch

from shoplm.textproc.config import PreprocessConfig
from shoplm.textproc.normalize import normalize_text
from shoplm.textproc.segment import Segmenter
from shoplm.textproc.truncate import must_truncate, truncate_ids, truncate_text

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

# Any text that yields content tokens in every vocabulary works; only the framing around it
# is kept.
_PROBE_TEXT = "hello world"


@dataclass(frozen=True, eq=False)
class EncodedBatch:
    """Padded model inputs for a batch of texts.

    `lengths` counts each row's real tokens (special tokens included, padding excluded) and
    `truncated` tells which rows lost text to a length limit.
    """

    input_ids: torch.LongTensor
    attention_mask: torch.LongTensor
    lengths: list[int]
    truncated: list[bool]


def special_token_frame(
    tokenizer: PreTrainedTokenizerBase,
) -> tuple[list[int], list[int]]:
    """Return the ids `tokenizer` puts before and after a single sequence, e.g. [CLS] / [SEP].

    transformers 5 removed `build_inputs_with_special_tokens` from tokenizers backed by the
    `tokenizers` library, so the frame is read off one probe text encoded with and without
    special tokens; this works the same for every tokenizer class.
    """
    content = tokenizer(_PROBE_TEXT, add_special_tokens=False, verbose=False)["input_ids"]
    framed = tokenizer(_PROBE_TEXT, add_special_tokens=True, verbose=False)["input_ids"]
    for start in range(len(framed) - len(content) + 1):
        if framed[start : start + len(content)] == content:
            return framed[:start], framed[start + len(content) :]
    raise ValueError(
        f"cannot find where {type(tokenizer).__name__} adds special tokens: encoding "
        f"{_PROBE_TEXT!r} with them ({framed}) does not contain its ids without them ({content})"
    )


ContentEncoder = Callable[[list[str]], list[list[int]]]


def content_encoder(tokenizer: PreTrainedTokenizerBase) -> ContentEncoder:
    """A function from texts to their token ids, special tokens not added, that reads special-token
    strings inside a text ("[SEP]", "<|im_end|>" typed into a review) as plain text: a user's words
    never become a control token of the model. The mask token is the exception: typed into a text,
    it marks the blank a fill-mask model fills.

    A fast tokenizer gets a private copy of its Rust tokenizer set up for that, without truncation
    or padding. The shared tokenizer is left as it is, since chat templates rely on it turning
    their special-token strings into special tokens. Calls on the copy never reconfigure it, so
    concurrent calls are safe.
    """
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        def encode_piece(text: str) -> list[int]:
            # verbose=False: the "longer than model_max_length" warning is wrong here, since the
            # pipeline truncates afterwards.
            encoded = tokenizer(text, add_special_tokens=False, split_special_tokens=True, verbose=False)
            return cast(list[int], encoded["input_ids"])
    else:
        own = copy.deepcopy(backend)
        own.no_truncation()
        own.no_padding()
        own.encode_special_tokens = True

        def encode_piece(text: str) -> list[int]:
            # The Rust tokenizer directly: the Python wrapper adds about half again to each call,
            # and serving calls this once per request on its event loop.
            return cast(list[int], own.encode(text, add_special_tokens=False).ids)

    mask, mask_id = tokenizer.mask_token, tokenizer.mask_token_id
    if not mask or mask_id is None:
        return lambda texts: [encode_piece(text) for text in texts]
    declared = getattr(tokenizer, "added_tokens_decoder", {}).get(mask_id)
    # An added token may swallow the spaces beside it (RoBERTa's "<mask>" takes the one before).
    lstrip, rstrip = getattr(declared, "lstrip", False), getattr(declared, "rstrip", False)

    def encode_with_masks(text: str) -> list[int]:
        pieces = text.split(mask)
        ids: list[int] = []
        for index, piece in enumerate(pieces):
            if index:
                ids.append(mask_id)
                piece = piece.lstrip() if rstrip else piece
            if lstrip and index < len(pieces) - 1:
                piece = piece.rstrip()
            if piece:
                ids.extend(encode_piece(piece))
        return ids

    return lambda texts: [encode_with_masks(text) for text in texts]


class TokenizerMismatchError(ValueError):
    """The preprocessing asks for a length the tokenizer cannot give (no room for text, or too long)."""


class TextPipeline:
    """Turns raw text into padded token ids: normalize, segment, truncate, tokenize, pad.

    Build one from the model's `PreprocessConfig` and tokenizer, in training and in serving
    alike. It holds no mutable state after construction, so one instance may serve several
    threads at once.
    """

    def __init__(self, config: PreprocessConfig, tokenizer: PreTrainedTokenizerBase | None = None) -> None:
        """Build the pipeline; without a tokenizer only `clean` and `pad` work.

        Raises FileNotFoundError for a missing segment.user_dict, and ValueError when the
        length limits leave no room for text next to the tokenizer's special tokens or exceed
        its model_max_length.
        """
        self.config = config
        self.tokenizer = tokenizer
        self._segmenter = Segmenter(config.segment) if config.segment.enabled else None
        self._prefix: list[int] = []
        self._suffix: list[int] = []
        self._encode: ContentEncoder | None = None
        if tokenizer is not None:
            self._check_tokenizer(tokenizer)
            self._encode = content_encoder(tokenizer)
        self.pad_token_id = _pad_token_id(tokenizer)

    def _check_tokenizer(self, tokenizer: PreTrainedTokenizerBase) -> None:
        if self.config.add_special_tokens:
            self._prefix, self._suffix = special_token_frame(tokenizer)
        special_count = len(self._prefix) + len(self._suffix)
        if self.token_limit <= special_count:
            raise TokenizerMismatchError(
                f"token limit {self.token_limit} leaves no room for text: the tokenizer adds "
                f"{special_count} special tokens to each sequence"
            )
        model_max_length = tokenizer.model_max_length
        if self.config.padding.max_length > model_max_length:
            raise TokenizerMismatchError(
                f"padding.max_length={self.config.padding.max_length} exceeds the tokenizer's "
                f"model_max_length={model_max_length}"
            )

    @property
    def token_limit(self) -> int:
        """Most tokens, special tokens included, that one encoded text may have."""
        limit = self.config.padding.sequence_limit
        truncate = self.config.truncate
        if truncate.unit == "tokens" and truncate.max_length is not None:
            limit = min(limit, truncate.max_length)
        return limit

    def clean(self, text: str) -> str:
        """Return `text` normalized, segmented if enabled, and cut if the budget is in chars.

        Raises TypeError for a non-str input and TextTooLongError for an over-long text when
        truncate.on_overflow is "error".
        """
        return self._clean(text)[0]

    def _clean(self, text: str) -> tuple[str, bool]:
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        text = normalize_text(text, self.config.normalize)
        if self._segmenter is not None:
            text = self._segmenter.segment(text)
        truncate = self.config.truncate
        if truncate.unit != "chars" or truncate.max_length is None:
            return text, False
        if not must_truncate(len(text), truncate.max_length, "chars", truncate.on_overflow):
            return text, False
        normalize = self.config.normalize
        text = truncate_text(
            text,
            truncate.max_length,
            truncate.strategy,
            truncate.head_fraction,
            trim_whitespace=normalize.collapse_whitespace,
        )
        if normalize.unicode_form is not None:
            # A combining mark at the start of the kept tail may compose with the head's end.
            text = unicodedata.normalize(normalize.unicode_form, text)
        return text, True

    def token_ids(self, text: str) -> tuple[list[int], bool]:
        """Return the token ids of the cleaned `text` and whether any of it was cut.

        The ids include the special tokens and number at most `token_limit`. Only the content
        between the special tokens is cut, so e.g. [CLS] and [SEP] stay in place. Raises
        TextTooLongError instead of cutting when truncate.on_overflow is "error".
        """
        return self.token_ids_batch([text])[0]

    def token_ids_batch(self, texts: list[str]) -> list[tuple[list[int], bool]]:
        """`token_ids` for each of `texts`, tokenized in one call (faster for many texts)."""
        encode = self._require_encoder()
        cleaned = [self._clean(text) for text in texts]
        contents = encode([text for text, _ in cleaned])
        return [self._frame(content, chars_cut) for content, (_, chars_cut) in zip(contents, cleaned, strict=True)]

    def _frame(self, content: list[int], chars_cut: bool) -> tuple[list[int], bool]:
        special_count = len(self._prefix) + len(self._suffix)
        limit = self.token_limit
        tokens_cut = must_truncate(
            len(content) + special_count,
            limit,
            "tokens",
            self.config.truncate.on_overflow,
        )
        if tokens_cut:
            truncate = self.config.truncate
            content = truncate_ids(
                content,
                limit - special_count,
                truncate.strategy,
                truncate.head_fraction,
            )
        return [*self._prefix, *content, *self._suffix], chars_cut or tokens_cut

    def _require_encoder(self) -> ContentEncoder:
        if self._encode is None:
            raise RuntimeError("this TextPipeline has no tokenizer; pass tokenizer= to TextPipeline to encode")
        return self._encode

    def count_tokens(self, text: str) -> int:
        """Return how many token ids `token_ids(text)` yields, i.e. what the model sees."""
        return len(self.token_ids(text)[0])

    def encode(self, texts: list[str]) -> EncodedBatch:
        """Clean, tokenize, truncate and pad `texts` into one batch.

        Raises ValueError for an empty list, TypeError for a bare str.
        """
        if isinstance(texts, str):
            raise TypeError("encode() takes a list of texts, got a str; wrap it in a list")
        if not texts:
            raise ValueError("encode() needs at least one text, got an empty list")
        encoded = self.token_ids_batch(list(texts))
        return self.pad([ids for ids, _ in encoded], [cut for _, cut in encoded])

    def pad(self, sequences: list[list[int]], truncated: list[bool] | None = None) -> EncodedBatch:
        """Pad token id `sequences` to one length as the padding config says.

        `truncated` is passed through to the batch (all False when omitted). Raises ValueError
        for an empty batch or a sequence longer than padding allows; pad never cuts, so that
        special tokens are never lost here.
        """
        if not sequences:
            raise ValueError("pad() needs at least one sequence, got an empty list")
        if truncated is None:
            truncated = [False] * len(sequences)
        if len(truncated) != len(sequences):
            raise ValueError(f"truncated has {len(truncated)} entries for {len(sequences)} sequences")
        lengths = [len(sequence) for sequence in sequences]
        limit = self.config.padding.sequence_limit
        for index, length in enumerate(lengths):
            if length > limit:
                raise ValueError(
                    f"sequences[{index}] has {length} tokens, over the padding limit of {limit}; "
                    "token_ids() truncates to fit"
                )
        width = self._padded_width(max(lengths))
        pad = self.pad_token_id
        # Padded Python lists become one tensor in a single call: far cheaper than a small
        # tensor per row, which matters on the serving event loop and in training collators.
        rows = zip(sequences, lengths, strict=True)
        if self.config.padding.side == "left":
            ids = [[pad] * (width - length) + list(sequence) for sequence, length in rows]
            mask = [[0] * (width - length) + [1] * length for length in lengths]
        else:
            ids = [list(sequence) + [pad] * (width - length) for sequence, length in rows]
            mask = [[1] * length + [0] * (width - length) for length in lengths]
        input_ids = torch.tensor(ids, dtype=torch.long)
        attention_mask = torch.tensor(mask, dtype=torch.long)
        return EncodedBatch(
            input_ids=cast(torch.LongTensor, input_ids),
            attention_mask=cast(torch.LongTensor, attention_mask),
            lengths=lengths,
            truncated=list(truncated),
        )

    def _padded_width(self, longest: int) -> int:
        padding = self.config.padding
        if padding.strategy == "fixed":
            return padding.sequence_limit
        if padding.strategy == "bucket":
            return next(
                (bucket for bucket in padding.buckets if bucket >= longest),
                padding.max_length,
            )
        return longest


def _pad_token_id(tokenizer: PreTrainedTokenizerBase | None) -> int:
    # Causal LMs often have no pad token; the attention mask hides padding, so eos serves.
    for candidate in (
        getattr(tokenizer, "pad_token_id", None),
        getattr(tokenizer, "eos_token_id", None),
    ):
        if isinstance(candidate, int):
            return candidate
    return 0
