"""The llama.cpp runtime for ``engine: llama_cpp``: GGUF generation through llama-cpp-python.

llama.cpp computes on the GGUF's own quantized weights with hand-tuned CPU kernels, so one decode
step costs far less Python and arithmetic than the de-quantized transformers model. The batch
works like llama.cpp's server slots: each running sequence owns one sequence id in a KV cache
split into one stream per sequence, a decode step is one ``llama_decode`` over one token of every
running sequence, and a finished sequence's cells are freed at once.

Prompts are still tokenized, templated and decoded by the Hugging Face tokenizer converted from
the same GGUF, so requests, stop sequences and usage counts behave as with the transformers engine.
The package is an optional extra: ``pip install 'shoplm[llamacpp]'``.
"""

from __future__ import annotations

import logging
import os
import weakref
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from transformers import AutoConfig, AutoTokenizer, GenerationConfig, PreTrainedTokenizerBase

from shoplm.config import BatchingConfig, ModelConfig
from shoplm.serving.loading import (
    ModelSourceError,
    ResolvedSource,
    plain_checkpoint,
    read_card,
    saved_preprocessing,
)
from shoplm.textproc import PreprocessConfig

logger = logging.getLogger(__name__)

INSTALL_HINT = "engine 'llama_cpp' needs the optional extra: pip install 'shoplm[llamacpp]'"


@dataclass
class LlamaCppModel:
    """A GGUF loaded into llama.cpp, with the Hugging Face tokenizer converted from it."""

    runtime: _Runtime
    tokenizer: PreTrainedTokenizerBase
    preprocessing: PreprocessConfig
    source: ResolvedSource
    device: torch.device
    parameter_bytes: int
    eos_ids: set[int]
    max_positions: int
    card: dict[str, Any] | None = None


def load_llama_cpp(config: ModelConfig, source: ResolvedSource) -> LlamaCppModel:
    """Load ``source``'s GGUF into llama.cpp, with room for ``batching.max_num_seqs`` sequences."""
    if source.gguf_file is None:
        raise ModelSourceError(
            f"model {config.name!r}: engine 'llama_cpp' runs GGUF files; set gguf_file (or source: package:smollm2)"
        )
    directory = plain_checkpoint(source)  # the converted tokenizer and config, cached after the first load
    try:
        tokenizer = AutoTokenizer.from_pretrained(directory)
        model_config = AutoConfig.from_pretrained(directory)
        generation = GenerationConfig.from_pretrained(directory)
    except (OSError, ValueError) as error:
        raise ModelSourceError(f"cannot load the tokenizer of {directory}: {error}") from error
    eos = generation.eos_token_id
    eos_ids = {int(i) for i in [*(eos if isinstance(eos, list) else [eos]), tokenizer.eos_token_id] if i is not None}
    trained_positions = int(getattr(model_config, "max_position_embeddings", 0) or 1 << 30)
    # Each sequence gets a KV stream long enough for the longest request the limits allow.
    per_sequence = min(trained_positions, config.limits.max_input_tokens + config.limits.max_new_tokens)
    runtime = _Runtime(source.directory / source.gguf_file, config.batching, per_sequence)
    return LlamaCppModel(
        runtime=runtime,
        tokenizer=tokenizer,
        preprocessing=config.preprocessing or saved_preprocessing(directory),
        source=source,
        device=torch.device("cpu"),
        parameter_bytes=runtime.model_bytes,
        eos_ids=eos_ids,
        max_positions=per_sequence,
        card=read_card(source.directory),
    )


class _Runtime:
    """A llama.cpp model, context and batch buffer; freed when the last reference goes."""

    def __init__(self, gguf: os.PathLike[str], batching: BatchingConfig, per_sequence: int) -> None:
        try:
            import llama_cpp
        except ImportError:
            raise ModelSourceError(INSTALL_HINT) from None
        logging.getLogger("llama-cpp-python").setLevel(logging.ERROR)  # llama.cpp's own load chatter
        self.api = llama_cpp
        llama_cpp.llama_backend_init()
        self.max_sequences = min(batching.max_num_seqs, int(llama_cpp.llama_max_parallel_sequences()))
        model_params = llama_cpp.llama_model_default_params()
        model_params.n_gpu_layers = 0
        model = llama_cpp.llama_model_load_from_file(os.fsencode(gguf), model_params)
        if not model:
            raise ModelSourceError(f"llama.cpp cannot load {gguf}")
        self.batch_tokens = max(1, min(batching.max_batch_tokens, per_sequence * self.max_sequences))
        params = llama_cpp.llama_context_default_params()
        params.n_ctx = per_sequence * self.max_sequences
        params.n_seq_max = self.max_sequences
        # One KV stream per sequence: a sequence's attention never depends on which others share
        # the batch, so greedy output is the same alone and in company.
        params.kv_unified = False
        params.n_batch = params.n_ubatch = self.batch_tokens
        params.n_threads = params.n_threads_batch = torch.get_num_threads()
        params.no_perf = True
        params.flash_attn_type = llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED
        context = llama_cpp.llama_init_from_model(model, params)
        if not context:
            llama_cpp.llama_model_free(model)
            raise ModelSourceError(f"llama.cpp cannot make a context for {gguf} ({params.n_ctx} KV cells)")
        self.model, self.context = model, context
        self.memory = llama_cpp.llama_get_memory(context)
        self.vocab_size = int(llama_cpp.llama_vocab_n_tokens(llama_cpp.llama_model_get_vocab(model)))
        self.model_bytes = int(llama_cpp.llama_model_size(model))
        self.batch = llama_cpp.llama_batch_init(self.batch_tokens, 0, 1)
        self._finalizer = weakref.finalize(self, _free, llama_cpp, model, context, self.batch)

    def decode(self, tokens: list[tuple[int, int, int, bool]]) -> list[torch.Tensor]:
        """Run (token, position, sequence id, wants logits) entries; the logits asked for, in order."""
        rows: list[torch.Tensor] = []
        for start in range(0, len(tokens), self.batch_tokens):
            chunk = tokens[start : start + self.batch_tokens]
            batch = self.batch
            batch.n_tokens = len(chunk)
            for index, (token, position, sequence, wants_logits) in enumerate(chunk):
                batch.token[index] = token
                batch.pos[index] = position
                batch.n_seq_id[index] = 1
                batch.seq_id[index][0] = sequence
                batch.logits[index] = wants_logits
            status = self.api.llama_decode(self.context, batch)
            if status != 0:
                raise RuntimeError(f"llama_decode failed with status {status} on {len(chunk)} tokens")
            for index, entry in enumerate(chunk):
                if entry[3]:
                    pointer = self.api.llama_get_logits_ith(self.context, index)  # float*, valid until the next call
                    values = np.ctypeslib.as_array(pointer, shape=(self.vocab_size,))
                    rows.append(torch.from_numpy(values.copy()))
        return rows

    def forget(self, sequence: int) -> None:
        """Free every KV cell of ``sequence``."""
        self.api.llama_memory_seq_rm(self.memory, sequence, -1, -1)

    def close(self) -> None:
        self._finalizer()


def _free(api: Any, model: Any, context: Any, batch: Any) -> None:
    api.llama_batch_free(batch)
    api.llama_free(context)
    api.llama_model_free(model)


class LlamaCppDecoder:
    """The running batch as llama.cpp sequences: a free sequence id per joining sequence."""

    def __init__(self, loaded: LlamaCppModel, batching: BatchingConfig) -> None:
        self.loaded = loaded
        self.runtime = loaded.runtime
        self.eos_ids = loaded.eos_ids
        self.max_positions = loaded.max_positions
        self.device = loaded.device
        if batching.max_num_seqs > self.runtime.max_sequences:
            raise ModelSourceError(
                f"batching.max_num_seqs ({batching.max_num_seqs}) exceeds the {self.runtime.max_sequences} "
                "sequences this llama.cpp build runs at once"
            )
        self._slots: list[int] = []  # sequence id of each running row, in joining order
        self._lengths: list[int] = []  # tokens in each row's cache
        self._free = list(range(self.runtime.max_sequences - 1, -1, -1))

    def can_join(self) -> bool:
        return bool(self._free)

    def prefill(self, prompts: list[list[int]]) -> torch.Tensor:
        entries = []
        for ids in prompts:
            slot = self._free.pop()
            self._slots.append(slot)
            self._lengths.append(len(ids))
            entries += [(token, position, slot, position == len(ids) - 1) for position, token in enumerate(ids)]
        return torch.stack(self.runtime.decode(entries))

    def decode(self, tokens: list[int]) -> torch.Tensor:
        entries = [
            (token, length, slot, True)
            for token, length, slot in zip(tokens, self._lengths, self._slots, strict=True)
        ]
        self._lengths = [length + 1 for length in self._lengths]
        return torch.stack(self.runtime.decode(entries))

    def keep(self, rows: list[int]) -> None:
        kept = set(rows)
        for row, slot in enumerate(self._slots):
            if row not in kept:
                self.runtime.forget(slot)
                self._free.append(slot)
        self._slots = [self._slots[row] for row in rows]
        self._lengths = [self._lengths[row] for row in rows]

    def reset(self) -> None:
        self.keep([])

    def warm_up(self) -> None:
        ids = self.loaded.tokenizer("warm up")["input_ids"]
        slot = self._free[-1]
        self.runtime.decode([(token, position, slot, position == len(ids) - 1) for position, token in enumerate(ids)])
        self.runtime.forget(slot)
