"""Train a tokenizer with `tokenizers` for a model built from scratch.

MiniLM's English vocabulary maps most Chinese characters to ``[UNK]``, so Chinese models need
their own. WordPiece with BERT's normalizer cuts Chinese into single characters (a good fit
for small classifiers); byte-level BPE never produces an unknown token (a good fit for
generation).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

from shoplm.config import ConfigError
from shoplm.training.config import TokenizerSpec

WORDPIECE_SPECIALS = {"pad_token": "[PAD]", "unk_token": "[UNK]", "cls_token": "[CLS]",
                      "sep_token": "[SEP]", "mask_token": "[MASK]"}
BPE_SPECIALS = {"bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>",
                "mask_token": "<mask>"}
# Role markers for chat fine-tuning of models whose tokenizer we train.
CHAT_TOKENS = ["<|system|>", "<|user|>", "<|assistant|>", "<|end|>"]
CHAT_TEMPLATE = (
    "{% for message in messages %}<|{{ message['role'] }}|>{{ message['content'] }}<|end|>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def train_tokenizer(spec: TokenizerSpec, texts: Iterable[str], *, causal: bool) -> PreTrainedTokenizerFast:
    """Learn a vocabulary from ``texts``; ``causal`` models get BOS/EOS, encoders [CLS]/[SEP]."""
    if spec.kind == "wordpiece":
        tokenizer, specials = _wordpiece(spec, texts)
    else:
        tokenizer, specials = _bpe(spec, texts, causal=causal)
    wrapped = PreTrainedTokenizerFast(tokenizer_object=tokenizer, **specials)
    if causal:
        wrapped.add_special_tokens({"additional_special_tokens": CHAT_TOKENS})
        wrapped.chat_template = CHAT_TEMPLATE
    if spec.added_tokens_file is not None:
        wrapped.add_tokens(read_added_tokens(spec.added_tokens_file))
    return wrapped


def _wordpiece(spec: TokenizerSpec, texts: Iterable[str]) -> tuple[Tokenizer, dict[str, str]]:
    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True, handle_chinese_chars=spec.split_chinese_chars)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(
        vocab_size=spec.vocab_size, min_frequency=spec.min_frequency,
        special_tokens=list(WORDPIECE_SPECIALS.values()),
    )
    tokenizer.train_from_iterator(texts, trainer)
    tokenizer.model = _in_canonical_order(tokenizer, list(WORDPIECE_SPECIALS.values()))
    cls_id, sep_id = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    tokenizer.decoder = decoders.WordPiece()
    return tokenizer, dict(WORDPIECE_SPECIALS)


def _in_canonical_order(tokenizer: Tokenizer, specials: list[str]) -> models.WordPiece:
    """The same vocabulary with ids that do not depend on the process: the special tokens first,
    then the others sorted.

    The WordPiece trainer numbers the ``##`` forms of the alphabet in the order of a hash map
    seeded per process, so training twice on the same text gave some tokens different ids.
    The processes of a multi-node run each train their own tokenizer, and must agree.
    """
    model = tokenizer.model
    assert isinstance(model, models.WordPiece)
    vocab = tokenizer.get_vocab(with_added_tokens=False)
    others = sorted(token for token in vocab if token not in specials)
    ordered = {token: index for index, token in enumerate([*specials, *others])}
    return models.WordPiece(
        ordered,
        unk_token=model.unk_token,
        continuing_subword_prefix=model.continuing_subword_prefix,
        max_input_chars_per_word=model.max_input_chars_per_word,
    )


def _bpe(spec: TokenizerSpec, texts: Iterable[str], *, causal: bool) -> tuple[Tokenizer, dict[str, str]]:
    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.normalizer = normalizers.NFKC()
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=spec.vocab_size, min_frequency=spec.min_frequency,
        special_tokens=list(BPE_SPECIALS.values()), initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator(texts, trainer)
    bos, eos = tokenizer.token_to_id("<s>"), tokenizer.token_to_id("</s>")
    if causal:
        # Every text starts with <s>, so the model learns how texts begin and a completion of one
        # word has a context to start from; EOS is added in the data.
        tokenizer.post_processor = processors.TemplateProcessing(
            single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", bos)]
        )
    else:
        # Encoders (RoBERTa-style) wrap each text as <s> ... </s>.
        tokenizer.post_processor = processors.TemplateProcessing(
            single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=[("<s>", bos), ("</s>", eos)]
        )
    return tokenizer, dict(BPE_SPECIALS)


def read_added_tokens(path: Path) -> list[str | AddedToken]:
    """Terms that must stay whole: an ``added_tokens.json`` from ``shoplm data prepare --lexicon``,
    or a lexicon file itself (one term a line, jieba user-dictionary format).

    Raises ConfigError naming ``tokenizer.added_tokens_file`` when the file is neither.
    """
    from shoplm.data import DataPrepError, load_added_tokens, read_lexicon

    field = f"tokenizer.added_tokens_file {path}"
    if not path.is_file():
        raise ConfigError(f"{field}: no such file")
    if path.suffix in _DATA_SUFFIXES:
        raise ConfigError(f"{field}: a {path.suffix} data file, not an added_tokens.json or a lexicon (a term a line)")
    if path.suffix == ".json":
        try:
            return list(load_added_tokens(path))
        except (ValueError, TypeError) as error:
            raise ConfigError(f"{field}: not an added_tokens.json written by shoplm data prepare ({error})") from None
    try:
        return [entry.term for entry in read_lexicon(path).entries]
    except DataPrepError as error:
        raise ConfigError(f"{field}: {error}") from None


# Data files a user might point at by mistake: read as a lexicon, each line would become a token.
_DATA_SUFFIXES = frozenset((".jsonl", ".csv", ".tsv", ".parquet", ".gz"))
