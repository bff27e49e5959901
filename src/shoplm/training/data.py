"""Training examples: read the configured files into `datasets`, tokenize them per task.

Every text goes through the model's :class:`TextPipeline` (normalize, segment, truncate,
tokenize), the same object the model server uses, so training and serving see identical ids.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from datasets import Dataset, Value, concatenate_datasets, load_dataset
from transformers import PreTrainedTokenizerBase

from shoplm import textproc
from shoplm.data import labels as labels_module
from shoplm.data import prepared_corpus_dir
from shoplm.data.card import CARD_JSON
from shoplm.data.labels import class_id_of
from shoplm.textproc import TextPipeline
from shoplm.training.config import DataConfig, TrainConfig

logger = logging.getLogger(__name__)

SPLIT_FILES = {"train": "train.jsonl", "validation": "validation.jsonl", "test": "test.jsonl"}


class TrainingDataError(ValueError):
    """The configured data is missing or does not fit the task; the message names the file or field."""


class _BadRow(TrainingDataError):
    """A row that does not fit the task, at ``position`` in the batch being tokenized."""

    def __init__(self, message: str, position: int) -> None:
        super().__init__(message)
        self.position = position


@dataclass(frozen=True)
class DataFiles:
    """The files a run reads, by role."""

    train: list[Path]
    validation: list[Path]
    extra_train: list[Path]

    def content_hash(self) -> str:
        """sha256 over every file's bytes, in role order: the run's data identity."""
        digest = hashlib.sha256()
        for role, paths in (("train", self.train), ("validation", self.validation), ("extra", self.extra_train)):
            for path in paths:
                digest.update(f"{role}:{path.name}:".encode())
                with path.open("rb") as handle:
                    for block in iter(lambda: handle.read(1 << 20), b""):
                        digest.update(block)
        return digest.hexdigest()


def split_file(directory: Path, split: str) -> Path:
    """``<directory>/<split>.jsonl``, or an error naming it."""
    path = directory / SPLIT_FILES[split]
    if not path.is_file():
        raise TrainingDataError(f"no {split} split in {directory} (expected {path.name})")
    return path


def resolve_files(data: DataConfig, eval_strategy: str = "epoch") -> DataFiles:
    """The concrete train/validation/extra files of a data section, each checked to exist and hold rows.

    With ``eval_strategy`` "no" a prepared directory's validation split may be missing or empty
    (``--split 1,0,0`` trains on everything); otherwise validation data is required.
    """
    evaluates = eval_strategy != "no"
    hint = f"training.eval_strategy is {eval_strategy!r}, which needs validation rows"
    if data.train:
        train, validation = list(data.train), list(data.validation)
        if evaluates and not validation:
            raise TrainingDataError(f"{hint}: give data.validation files, or set training.eval_strategy: no")
    else:
        directory = data.dir if data.dir is not None else prepared_corpus_dir(str(data.corpus))
        train = [split_file(directory, "train")]
        validation = list(data.validation)
        if not validation:
            path = directory / SPLIT_FILES["validation"]
            if evaluates and not (path.is_file() and _has_content(path)):
                found = "holds no rows" if path.is_file() else "is missing"
                raise TrainingDataError(f"{hint}, and {path} {found}; give data.validation files, or set "
                                        "training.eval_strategy: no")
            validation = [path] if path.is_file() and _has_content(path) else []
    extra = list(data.extra_train) + [split_file(prepared_corpus_dir(name), "train") for name in data.extra_corpora]
    for path in [*train, *validation, *extra]:
        if not path.is_file():
            raise TrainingDataError(f"data file not found: {path}")
        if path.suffix not in (".jsonl", ".json", ".txt"):
            raise TrainingDataError(f"{path}: training reads .jsonl or .txt files, not {path.suffix or 'no suffix'}")
        if not _has_content(path):
            # datasets cannot infer a schema from nothing and fails with an unrelated message.
            raise TrainingDataError(f"{path}: the file holds no rows")
    return DataFiles(train, validation, extra)


def label_names_for(config: TrainConfig, files: DataFiles) -> list[str]:
    """The class names of a ``classify`` run: the config's when it gives them, else the data's.

    ``shoplm data prepare`` records the names of string labels (``neg``/``pos``, or three
    classes) in the dataset card beside the split files; without a card, or a card without
    names, the config's default (negative, positive) stands.
    """
    if "label_names" in config.model.model_fields_set:
        return list(config.model.label_names)
    card = files.train[0].parent / CARD_JSON
    if card.is_file():
        try:
            names = orjson.loads(card.read_bytes()).get("label_names")
        except orjson.JSONDecodeError as error:
            raise TrainingDataError(f"{card}: not valid JSON ({error})") from None
        if isinstance(names, list) and len(names) >= 2 and all(isinstance(name, str) for name in names):
            return names
    return list(config.model.label_names)


def read_rows(paths: list[Path], fields: list[str], text_field: str | None = None) -> Dataset:
    """The rows of ``paths`` as one Dataset holding ``fields`` (text files give a ``text`` column).

    ``text_field``, one of the fields, must hold strings in every file.
    """
    parts = []
    for path in paths:
        parts.append(_checked_columns(path, _load(path), fields, text_field))
    if not parts:
        raise TrainingDataError("no data files given")
    return concatenate_datasets(parts) if len(parts) > 1 else parts[0]


def texts_for_tokenizer(files: DataFiles, data: DataConfig, pipeline: TextPipeline, limit: int) -> Iterator[str]:
    """Cleaned training texts (as the model will see them) to learn a vocabulary from.

    Chat rows contribute the content of each message; other rows their text field.
    """
    seen = 0
    for path in [*files.train, *files.extra_train]:
        field = "text" if path.suffix == ".txt" else data.text_field
        rows = _load(path)
        chat = path in files.train and data.messages_field in rows.column_names and field not in rows.column_names
        columns = [data.messages_field] if chat else [field]
        for row in _checked_columns(path, rows, columns, None if chat else field):
            texts = _message_texts(row[data.messages_field]) if chat else [row[field]]
            for text in texts:
                if seen >= limit:
                    return
                seen += 1
                yield pipeline.clean(str(text or ""))


def _message_texts(messages: Any) -> list[str]:
    """The contents of a chat row's messages; a malformed row gives none (tokenizing names it)."""
    if not isinstance(messages, list):
        return []
    return [m["content"] for m in messages if isinstance(m, dict) and isinstance(m.get("content"), str)]


def _checked_columns(path: Path, rows: Dataset, fields: list[str], text_field: str | None = None) -> Dataset:
    """``rows`` narrowed to ``fields``, or an error naming the missing ones and the columns there are.

    ``text_field`` must be a column of strings (nulls allowed): numbers or lists would otherwise
    be trained on as their printed form.
    """
    missing = [field for field in fields if field not in rows.column_names]
    if missing:
        raise TrainingDataError(
            f"{path}: no column {', '.join(map(repr, missing))}; its columns are {', '.join(rows.column_names)}"
        )
    if text_field is not None:
        feature = rows.features[text_field]
        if not (isinstance(feature, Value) and feature.dtype in ("string", "large_string", "null")):
            held = feature.dtype if isinstance(feature, Value) else "values of mixed types"
            raise TrainingDataError(f"{path}: column {text_field!r} holds {held}, not text: every row needs a string")
    return rows.select_columns(fields)


def _load(path: Path) -> Dataset:
    """One file as a Dataset (Arrow, memory-mapped from the datasets cache)."""
    kind = "text" if path.suffix == ".txt" else "json"
    try:
        return load_dataset(kind, data_files=str(path), split="train")
    except Exception as error:  # noqa: BLE001 - datasets wraps parse errors in several types
        cause = error.__cause__ or error
        what = "UTF-8 text" if kind == "text" else "valid JSON lines"
        raise TrainingDataError(f"{path}: not {what} ({type(cause).__name__}: {cause})") from None


def _has_content(path: Path) -> bool:
    with path.open("rb") as lines:
        return any(line.strip() for line in lines)


def build_split(
    config: TrainConfig, paths: list[Path], pipeline: TextPipeline, *, train: bool, extra: list[Path] | None = None
) -> Dataset:
    """Tokenized examples of one split for ``config.task``."""
    data = config.data
    limit = data.max_train_samples if train else data.max_eval_samples
    sources = paths + (extra or [])
    if config.task == "chat":
        rows = read_rows(paths, [data.messages_field])
    elif config.task == "classify":
        rows = read_rows(paths, [data.text_field, data.label_field], text_field=data.text_field)
    else:
        rows = _text_rows(sources, data.text_field)
    if limit is not None:
        rows = rows.select(range(min(limit, len(rows))))
    encoded = rows.map(
        _tokenize, batched=True, with_indices=True, remove_columns=rows.column_names,
        fn_kwargs={"config": config, "pipeline": pipeline, "paths": sources, "code": _code_fingerprint()},
        desc="tokenizing",
    )
    if skipped := len(rows) - len(encoded):
        logger.warning("%s: %d of %d rows of %s skipped: %s", "train" if train else "validation", skipped, len(rows),
                       ", ".join(p.name for p in paths),
                       _SKIP_REASONS[config.task].format(limit=pipeline.token_limit))
    _warn_unknown_tokens(encoded, pipeline.tokenizer, "train" if train else "validation")
    if config.task == "clm" and data.pack:
        encoded = encoded.map(
            _pack, batched=True, remove_columns=encoded.column_names, fn_kwargs={"block": pipeline.token_limit},
            desc="packing",
        )
    if len(encoded) == 0:
        raise TrainingDataError(f"no examples left in {', '.join(p.name for p in paths)} after tokenizing")
    return encoded


# Above this share of unknown tokens, a tokenizer does not cover the text (MiniLM's English
# vocabulary reads most Chinese characters as [UNK]): say so before hours of training on it.
UNKNOWN_TOKEN_WARNING_SHARE = 0.05
_UNKNOWN_TOKEN_SAMPLE_ROWS = 2000


def unknown_token_share(examples: Dataset, tokenizer: PreTrainedTokenizerBase | None) -> float | None:
    """The share of the unknown token among the text tokens of the first rows (None: no unknown token)."""
    unknown = None if tokenizer is None else tokenizer.unk_token_id
    if unknown is None or len(examples) == 0 or "input_ids" not in examples.column_names:
        return None
    special = set(tokenizer.all_special_ids) - {unknown}  # type: ignore[union-attr]
    sample = examples.select(range(min(_UNKNOWN_TOKEN_SAMPLE_ROWS, len(examples))))["input_ids"]
    tokens = [token for ids in sample for token in ids if token not in special]
    return tokens.count(unknown) / len(tokens) if tokens else None


def _warn_unknown_tokens(examples: Dataset, tokenizer: PreTrainedTokenizerBase | None, split: str) -> None:
    share = unknown_token_share(examples, tokenizer)
    if share is not None and share > UNKNOWN_TOKEN_WARNING_SHARE:
        assert tokenizer is not None
        logger.warning(
            "%s: %.0f%% of the text's tokens are %s: the tokenizer does not cover this text, so the model "
            "cannot tell those characters apart; train a tokenizer for it (a tokenizer section) or start "
            "from a model whose vocabulary covers the language", split, 100 * share, tokenizer.unk_token,
        )


@functools.cache
def _code_fingerprint() -> str:
    """sha256 of the source that turns rows into examples.

    datasets reuses a cached ``map`` when the function and its arguments hash the same, and it
    hashes module-level functions by name: without this, a changed tokenizing rule would keep
    serving examples made by the old one.
    """
    digest = hashlib.sha256()
    for module in (sys.modules[__name__], labels_module, textproc):
        files = [Path(str(module.__file__))]
        if files[0].name == "__init__.py":
            files = sorted(files[0].parent.glob("*.py"))
        for path in files:
            digest.update(path.read_bytes())
    return digest.hexdigest()


def _tokenize(
    batch: dict[str, list[Any]],
    indices: list[int],
    config: TrainConfig,
    pipeline: TextPipeline,
    paths: list[Path],
    code: str,  # only keys datasets' cache: see _code_fingerprint
) -> dict[str, list[Any]]:
    try:
        return _TOKENIZERS[config.task](batch, config, pipeline)
    except _BadRow as error:
        raise TrainingDataError(f"{_row_origin(paths, indices[error.position])}: {error}") from None


def _row_origin(paths: list[Path], index: int) -> str:
    """``file, row N`` of the row at ``index`` of the rows of ``paths`` read one after the other."""
    for path in paths:
        rows = len(_load(path))
        if index < rows:
            return f"{path}, row {index + 1}"
        index -= rows
    return f"row {index + 1}"


def _text_rows(paths: list[Path], text_field: str) -> Dataset:
    # Extra text (e.g. .txt news) joins the training texts under one column name.
    parts = []
    for path in paths:
        field = "text" if path.suffix == ".txt" else text_field
        part = read_rows([path], [field], text_field=field)
        parts.append(part.rename_column(field, "text") if field != "text" else part)
    return concatenate_datasets(parts) if len(parts) > 1 else parts[0]


def _classify(batch: dict[str, list[Any]], config: TrainConfig, pipeline: TextPipeline) -> dict[str, list[Any]]:
    data = config.data
    names = config.model.label_names
    labels, texts = [], []
    for position, (text, label) in enumerate(zip(batch[data.text_field], batch[data.label_field], strict=True)):
        if text is None or not str(text).strip():
            continue  # nothing to learn from; counted as skipped
        class_id = class_id_of(label, names)
        if class_id is None:
            raise _BadRow(
                f"label {label!r} in column {data.label_field!r} is neither a class id 0..{len(names) - 1} nor a "
                f"class name ({', '.join(names)}); model.label_names names the classes",
                position,
            )
        labels.append(class_id)
        texts.append(str(text))
    return {"input_ids": [ids for ids, _ in pipeline.token_ids_batch(texts)], "labels": labels}


def _mlm(batch: dict[str, list[Any]], config: TrainConfig, pipeline: TextPipeline) -> dict[str, list[Any]]:
    texts = [str(text or "") for text in batch["text"] if text and str(text).strip()]
    return {"input_ids": [ids for ids, _ in pipeline.token_ids_batch(texts)]}


def _clm(batch: dict[str, list[Any]], config: TrainConfig, pipeline: TextPipeline) -> dict[str, list[Any]]:
    tokenizer = pipeline.tokenizer
    assert tokenizer is not None
    eos = tokenizer.eos_token_id
    texts = [str(text) for text in batch["text"] if text and str(text).strip()]
    rows = []
    for ids, _ in pipeline.token_ids_batch(texts):
        if eos is not None and (not ids or ids[-1] != eos):
            # Each text ends with EOS, so the model learns where a title or query stops.
            ids = [*ids[: pipeline.token_limit - 1], eos]
        rows.append(ids)
    return {"input_ids": rows, "labels": [list(ids) for ids in rows]}


def _chat(batch: dict[str, list[Any]], config: TrainConfig, pipeline: TextPipeline) -> dict[str, list[Any]]:
    tokenizer = pipeline.tokenizer
    assert tokenizer is not None
    inputs, labels = [], []
    for position, messages in enumerate(batch[config.data.messages_field]):
        try:
            ids, prompt_length = chat_token_ids(tokenizer, pipeline, messages)
        except TrainingDataError as error:
            raise _BadRow(str(error), position) from None
        limit = pipeline.token_limit
        if prompt_length >= limit:
            continue  # nothing of the answer would fit; such rows teach nothing
        ids = ids[:limit]
        inputs.append(ids)
        labels.append([-100] * prompt_length + ids[prompt_length:])
    return {"input_ids": inputs, "labels": labels}


def chat_token_ids(
    tokenizer: PreTrainedTokenizerBase, pipeline: TextPipeline, messages: Any
) -> tuple[list[int], int]:
    """Token ids of a conversation in the chat template, and how many belong to the prompt.

    The loss covers only the last message (the assistant's answer): the prompt is everything
    the template renders before it, generation prompt included.
    """
    if not isinstance(messages, list) or not messages or not all(
        isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str) for m in messages
    ):
        raise TrainingDataError("chat rows need a non-empty list of {role, content} messages")
    if messages[-1]["role"] != "assistant":
        raise TrainingDataError(f"the last chat message must be the assistant's answer, got {messages[-1]['role']!r}")
    cleaned = [{"role": m["role"], "content": pipeline.clean(m["content"])} for m in messages]
    prompt = tokenizer.apply_chat_template(cleaned[:-1], tokenize=False, add_generation_prompt=True)
    full = tokenizer.apply_chat_template(cleaned, tokenize=False)
    prompt_ids = tokenizer(str(prompt), add_special_tokens=False)["input_ids"]
    ids = tokenizer(str(full), add_special_tokens=False)["input_ids"]
    if tokenizer.eos_token_id is not None and ids[-1] != tokenizer.eos_token_id:
        ids = [*ids, tokenizer.eos_token_id]
    return list(ids), len(prompt_ids)


def _pack(batch: dict[str, list[Any]], block: int) -> dict[str, list[Any]]:
    joined = [token for ids in batch["input_ids"] for token in ids]
    usable = len(joined) // block * block
    blocks = [joined[start : start + block] for start in range(0, usable, block)]
    return {"input_ids": blocks, "labels": [list(b) for b in blocks]}


_SKIP_REASONS = {
    "chat": "the prompt before the answer fills all {limit} tokens (shorten the prompts, or raise "
            "preprocessing.padding.max_length within the model's positions)",
    "classify": "no text", "mlm": "blank text", "rtd": "blank text", "clm": "blank text",
}
_TOKENIZERS = {"classify": _classify, "mlm": _mlm, "rtd": _mlm, "clm": _clm, "chat": _chat}
