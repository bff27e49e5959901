"""Preprocessing configuration: what a model expects its text to look like.

Training writes a `PreprocessConfig` as ``preprocessing.json`` next to the model; serving reads
the same file back, so both sides build an identical `TextPipeline`.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PositiveInt,
    field_validator,
    model_validator,
)

CONFIG_FILENAME = "preprocessing.json"


class NormalizeConfig(BaseModel):
    """Character-level cleanup applied to every text before anything else."""

    model_config = ConfigDict(extra="forbid")

    unicode_form: Literal["NFKC", "NFC", "NFD", "NFKD"] | None = Field(
        default="NFKC",
        description="Unicode normalization form applied to the text; None leaves it as is.",
    )
    fullwidth_to_halfwidth: bool = Field(
        default=True,
        description=(
            "Map full-width ASCII variants (U+FF01-U+FF5E) and the ideographic space (U+3000) "
            "to ASCII, whatever unicode_form is."
        ),
    )
    strip_control: bool = Field(
        default=True,
        description=(
            "Remove control and format characters (zero-width characters included); "
            "whitespace controls such as newline and tab become spaces."
        ),
    )
    collapse_whitespace: bool = Field(
        default=True,
        description="Replace each run of whitespace with one space and strip both ends.",
    )
    lowercase: bool = Field(default=False, description="Lowercase the text.")


class SegmentConfig(BaseModel):
    """Word segmentation with jieba, for Chinese text fed to word-level vocabularies."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(default=False, description="Segment the text into words with jieba.")
    user_dict: Path | None = Field(
        default=None,
        description=(
            "jieba user dictionary (one 'word [freq] [tag]' per line, UTF-8). A relative path "
            "in a saved preprocessing.json is resolved against that file's directory."
        ),
    )
    hmm: bool = Field(default=True, description="Let jieba's HMM find words not in its dictionary.")
    separator: str = Field(default=" ", min_length=1, description="String placed between segmented words.")


class TruncateConfig(BaseModel):
    """How a text longer than its budget is cut."""

    model_config = ConfigDict(extra="forbid")

    unit: Literal["chars", "tokens"] = Field(
        default="tokens",
        description=("Unit of max_length: characters of the cleaned text, or tokens including special tokens."),
    )
    max_length: PositiveInt | None = Field(
        default=None,
        description="Budget in `unit`; None leaves only padding.max_length (in tokens) in force.",
    )
    strategy: Literal["head", "tail", "head_tail"] = Field(
        default="head",
        description=(
            "Which part survives: head keeps the beginning, tail the end, head_tail the beginning and the end."
        ),
    )
    head_fraction: float = Field(
        default=0.5,
        gt=0.0,
        lt=1.0,
        description="Share of the budget taken from the beginning when strategy is head_tail.",
    )
    on_overflow: Literal["truncate", "error"] = Field(
        default="truncate",
        description="Cut an over-long text, or reject it with TextTooLongError.",
    )


class PaddingConfig(BaseModel):
    """How sequences of a batch are brought to one length."""

    model_config = ConfigDict(extra="forbid")

    strategy: Literal["longest", "fixed", "bucket"] = Field(
        default="longest",
        description=(
            "longest pads to the longest sequence of the batch; fixed to `length`; bucket to "
            "the smallest bucket that holds the longest sequence, else to max_length."
        ),
    )
    length: PositiveInt | None = Field(
        default=None,
        description=(
            "Padded length for strategy fixed (required there, rejected elsewhere); longer "
            "sequences are truncated to it like to max_length."
        ),
    )
    buckets: list[PositiveInt] = Field(
        default_factory=list,
        description="Strictly ascending padded lengths for strategy bucket (required there).",
    )
    max_length: PositiveInt = Field(
        default=512,
        description=(
            "Hard maximum of tokens per sequence, special tokens included; longer sequences "
            "are truncated by the truncate strategy, or rejected if on_overflow is error."
        ),
    )
    side: Literal["right", "left"] = Field(
        default="right",
        description="Where padding goes; left suits causal language models.",
    )

    @field_validator("buckets")
    @classmethod
    def _buckets_ascending(cls, buckets: list[int]) -> list[int]:
        if any(later <= earlier for earlier, later in itertools.pairwise(buckets)):
            raise ValueError(f"buckets must be strictly ascending, got {buckets}")
        return buckets

    @model_validator(mode="after")
    def _strategy_fields(self) -> Self:
        # A setting that the chosen strategy would ignore is more likely a mistake than intent.
        if self.strategy == "fixed" and self.length is None:
            raise ValueError("length is required when strategy is 'fixed'")
        if self.strategy != "fixed" and self.length is not None:
            raise ValueError(f"length is only used when strategy is 'fixed', not {self.strategy!r}")
        if self.strategy == "bucket" and not self.buckets:
            raise ValueError("buckets must list at least one length when strategy is 'bucket'")
        if self.strategy != "bucket" and self.buckets:
            raise ValueError(f"buckets are only used when strategy is 'bucket', not {self.strategy!r}")
        if self.length is not None and self.length > self.max_length:
            raise ValueError(f"length={self.length} exceeds max_length={self.max_length}")
        if self.buckets and self.buckets[-1] > self.max_length:
            raise ValueError(f"buckets up to {self.buckets[-1]} exceed max_length={self.max_length}")
        return self

    @property
    def sequence_limit(self) -> int:
        """Most tokens one sequence may hold: max_length, or the fixed length when smaller."""
        return self.length if self.length is not None else self.max_length


class PreprocessConfig(BaseModel):
    """Everything that turns raw text into model inputs; saved next to each model."""

    model_config = ConfigDict(extra="forbid")

    normalize: NormalizeConfig = Field(default_factory=NormalizeConfig, description="Character-level cleanup.")
    segment: SegmentConfig = Field(default_factory=SegmentConfig, description="jieba word segmentation.")
    truncate: TruncateConfig = Field(default_factory=TruncateConfig, description="Cutting over-long texts.")
    padding: PaddingConfig = Field(
        default_factory=PaddingConfig,
        description="Batch padding and the hard length maximum.",
    )
    add_special_tokens: bool = Field(
        default=True,
        description="Add the tokenizer's special tokens (e.g. [CLS] ... [SEP]) to each sequence.",
    )

    def save(self, directory: str | Path) -> Path:
        """Write this config as ``preprocessing.json`` in `directory` (created if missing).

        Returns the path of the written file.
        """
        path = Path(directory) / CONFIG_FILENAME
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.model_dump_json(indent=2) + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, directory_or_file: str | Path) -> PreprocessConfig:
        """Read a config written by `save`, from its directory or from the file itself.

        Raises FileNotFoundError naming the path when there is no such file, and
        pydantic.ValidationError when its content is not a valid config.
        """
        path = Path(directory_or_file)
        if path.is_dir():
            path = path / CONFIG_FILENAME
        if not path.is_file():
            raise FileNotFoundError(f"no preprocessing config at {path}")
        # The dictionary travels with the model directory, not with the reader's cwd.
        return cls.model_validate_json(path.read_text(encoding="utf-8")).with_paths_from(path.parent)

    def with_paths_from(self, base: Path) -> PreprocessConfig:
        """This config with a relative ``segment.user_dict`` taken from ``base``, not the cwd."""
        user_dict = self.segment.user_dict
        if user_dict is None or user_dict.expanduser().is_absolute():
            return self
        segment = self.segment.model_copy(update={"user_dict": base / user_dict})
        return self.model_copy(update={"segment": segment})
