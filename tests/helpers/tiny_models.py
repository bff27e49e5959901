"""Tiny checkpoints built in seconds, with tokenizers trained on a few lines, for fast tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import (
    BertConfig,
    BertForMaskedLM,
    BertForSequenceClassification,
    BertModel,
    GPT2Config,
    GPT2LMHeadModel,
    PreTrainedTokenizerFast,
)

CORPUS = [
    "red running shoes for men",
    "blue cotton shirt with long sleeves",
    "wireless headphones with noise cancelling",
    "a great product, fast delivery, very happy",
    "terrible quality, broke after one day",
    "这个手机很好用，物流也很快",
    "质量太差了，不推荐购买",
    "the quick brown fox jumps over the lazy dog",
] * 4

CHAT_TEMPLATE = (
    "{% for message in messages %}<|{{ message['role'] }}|>{{ message['content'] }}<|end|>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def wordpiece_tokenizer() -> PreTrainedTokenizerFast:
    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tokenizer.train_from_iterator(CORPUS, trainers.WordPieceTrainer(vocab_size=300, special_tokens=specials))
    cls_id, sep_id = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]", special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)]
    )
    tokenizer.decoder = decoders.WordPiece()
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
        sep_token="[SEP]", mask_token="[MASK]",
    )


def bpe_tokenizer() -> PreTrainedTokenizerFast:
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    specials = ["<|endoftext|>", "<|user|>", "<|assistant|>", "<|system|>", "<|end|>"]
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tokenizer.train_from_iterator(CORPUS, trainer)
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, eos_token="<|endoftext|>", pad_token="<|endoftext|>",
        bos_token="<|endoftext|>",
    )
    wrapped.chat_template = CHAT_TEMPLATE
    return wrapped


def _bert_config(tokenizer: PreTrainedTokenizerFast, **extra: object) -> BertConfig:
    return BertConfig(
        vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=128, pad_token_id=tokenizer.pad_token_id, **extra,
    )


def make_encoder(directory: Path, task: str, seed: int = 0) -> Path:
    """A 2-layer, 32-wide BERT for ``embed``, ``classify`` (negative/positive) or ``fill-mask``."""
    torch.manual_seed(seed)
    tokenizer = wordpiece_tokenizer()
    if task == "embed":
        model = BertModel(_bert_config(tokenizer))
    elif task == "classify":
        labels = {0: "negative", 1: "positive"}
        config = _bert_config(tokenizer, id2label=labels, label2id={v: k for k, v in labels.items()})
        model = BertForSequenceClassification(config)
    elif task == "fill-mask":
        model = BertForMaskedLM(_bert_config(tokenizer))
    else:
        raise ValueError(f"no tiny encoder for task {task!r}")
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def make_causal_lm(directory: Path, seed: int = 0) -> Path:
    """A 2-layer, 32-wide GPT-2 with a byte-level BPE tokenizer and a chat template."""
    torch.manual_seed(seed)
    tokenizer = bpe_tokenizer()
    config = GPT2Config(
        vocab_size=len(tokenizer), n_embd=32, n_layer=2, n_head=2, n_positions=2048,
        bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = GPT2LMHeadModel(config)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def _built_once(directory: Path, build: Callable[[Path], Path]) -> str:
    # Tokenizer training may order ties differently from run to run, so a model directory that
    # a running server already loaded must never be rebuilt under it.
    if not (directory / "config.json").is_file():
        build(directory)
    return str(directory)


def tiny_model_configs(root: Path) -> list[dict[str, Any]]:
    """Serve-config entries for the four tiny models, built under ``root`` on first use."""
    fast = {"max_queue_delay_ms": 5}
    return [
        {"name": "embed", "task": "embed", "source": _built_once(root / "embed", lambda d: make_encoder(d, "embed")),
         "batching": fast},
        {"name": "classify", "task": "classify",
         "source": _built_once(root / "classify", lambda d: make_encoder(d, "classify")), "batching": fast},
        {"name": "fill", "task": "fill-mask",
         "source": _built_once(root / "fill", lambda d: make_encoder(d, "fill-mask"))},
        {"name": "gen", "task": "generate", "source": _built_once(root / "gen", make_causal_lm),
         "limits": {"max_input_tokens": 128, "max_new_tokens": 64, "default_max_new_tokens": 16},
         "preprocessing": {"normalize": {"collapse_whitespace": False}}},
    ]
