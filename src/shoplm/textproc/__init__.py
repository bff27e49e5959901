"""The data interface: one text pipeline shared by training and serving.

    config = PreprocessConfig.load(model_dir)           # written by training with config.save()
    pipeline = TextPipeline(config, tokenizer)
    batch = pipeline.encode(["ＡＢＣ review text", ...])  # EncodedBatch of LongTensors

Steps, in order: normalize (unicode form, full-width to half-width, control characters,
whitespace, case) -> segment (jieba, optional) -> truncate by characters (optional) ->
tokenize -> truncate by tokens around the special tokens -> pad.

Exceptions raised besides TypeError for a non-str text and pydantic.ValidationError for a bad
config:

    ValueError
     └── TextTooLongError     text over its limit while truncate.on_overflow is "error"
    FileNotFoundError         segment.user_dict or preprocessing.json missing
    RuntimeError              token_ids/encode on a pipeline built without a tokenizer
"""

from shoplm.textproc.config import (
    NormalizeConfig,
    PaddingConfig,
    PreprocessConfig,
    SegmentConfig,
    TruncateConfig,
)
from shoplm.textproc.pipeline import EncodedBatch, TextPipeline, TokenizerMismatchError
from shoplm.textproc.truncate import TextTooLongError

__all__ = [
    "EncodedBatch",
    "NormalizeConfig",
    "PaddingConfig",
    "PreprocessConfig",
    "SegmentConfig",
    "TextPipeline",
    "TextTooLongError",
    "TokenizerMismatchError",
    "TruncateConfig",
]
