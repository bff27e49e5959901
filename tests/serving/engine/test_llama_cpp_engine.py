"""The generation engine on the llama.cpp runtime (``engine: llama_cpp``), on SmolLM2's GGUF."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from shoplm.config import BatchingConfig, ModelConfig
from shoplm.serving.engine.generation import GenerationEngine
from shoplm.serving.engine.llama_cpp_runtime import load_llama_cpp
from shoplm.serving.engine.sampling import SamplingParams
from shoplm.serving.loading import ModelSourceError, resolve_source
from tests.serving.engine.test_generation_engine import leave_after_first_token_then_generate, run_alone_then_busy

llama_cpp = pytest.importorskip("llama_cpp", reason="the optional extra shoplm[llamacpp] is not installed")

pytestmark = pytest.mark.real_models

QUESTIONS = [
    "What is the capital of France?",
    "Name three fruits.",
    "Write a short slogan for running shoes.",
    "How do I return an order?",
]
NEW_TOKENS = 24


def chat_config(**batching: int) -> ModelConfig:
    return ModelConfig(
        name="chat", task="generate", source="package:smollm2", engine="llama_cpp",
        batching=BatchingConfig(**batching),
    )


@pytest.fixture(scope="module")
def loaded():
    config = chat_config(max_num_seqs=4)
    model = load_llama_cpp(config, resolve_source(config, Path("unused")))
    yield model
    model.runtime.close()


def prompt_ids(loaded, question: str) -> list[int]:
    messages = [{"role": "user", "content": question}]
    encoded = loaded.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
    return [int(i) for i in (encoded if isinstance(encoded, list) else encoded["input_ids"])]


def llama_cpp_reference(loaded, ids: list[int]) -> list[int]:
    """Greedy tokens from llama-cpp-python's own high-level API, one prompt at a time."""
    gguf = loaded.source.directory / loaded.source.gguf_file
    llm = llama_cpp.Llama(model_path=str(gguf), n_ctx=512, flash_attn=True, verbose=False)
    try:
        out = []
        for token in llm.generate(ids, top_k=1, temp=0.0, reset=True):
            if token in loaded.eos_ids or len(out) == NEW_TOKENS:
                break
            out.append(token)
        return out
    finally:
        llm.close()


def make_engine(loaded, max_num_seqs: int = 4) -> GenerationEngine:
    from shoplm.serving.metrics import ServerMetrics

    return GenerationEngine(
        model="chat", version="1", loaded=loaded,
        batching=BatchingConfig(max_num_seqs=max_num_seqs), metrics=ServerMetrics(),
    )


def test_greedy_output_matches_llama_cpp_alone_and_in_a_busy_batch(loaded) -> None:
    prompts = [prompt_ids(loaded, question) for question in QUESTIONS]
    expected = [llama_cpp_reference(loaded, ids) for ids in prompts]
    engine = make_engine(loaded)
    greedy = SamplingParams(max_new_tokens=NEW_TOKENS, temperature=0)

    alone, busy = run_alone_then_busy(engine, prompts, greedy, spacing=0.01)

    assert all(expected), "the reference generated nothing"
    assert [tokens for tokens, _, _ in alone] == expected
    assert [tokens for tokens, _, _ in busy] == expected
    assert [text for _, text, _ in busy] == [loaded.tokenizer.decode(t, skip_special_tokens=True) for t in expected]


def test_a_client_that_leaves_frees_its_sequence(loaded) -> None:
    engine = make_engine(loaded, max_num_seqs=1)
    ids = prompt_ids(loaded, "Tell me a long story.")

    tokens, _, finish = leave_after_first_token_then_generate(engine, ids)

    assert (len(tokens), finish) == (3, "length")
    assert engine.decoder.can_join()  # the sequence id went back to the free list


def test_more_sequences_than_the_context_holds_is_refused(loaded) -> None:
    with pytest.raises(ModelSourceError, match="max_num_seqs"):
        make_engine(loaded, max_num_seqs=5)  # the context was made for 4


def test_engine_choice_is_validated_in_config() -> None:
    with pytest.raises(ValidationError, match="serves task 'generate'"):
        ModelConfig(name="s", task="classify", source="package:smollm2", engine="llama_cpp")
    with pytest.raises(ValidationError, match="runs on the CPU"):
        ModelConfig(name="c", task="generate", source="package:smollm2", engine="llama_cpp", device="cuda")
    with pytest.raises(ValidationError, match="engine"):
        ModelConfig(name="c", task="generate", source="package:smollm2", engine="vllm")


def test_a_source_without_gguf_is_a_clear_error(tmp_path: Path) -> None:
    from tests.helpers.tiny_models import make_causal_lm

    directory = make_causal_lm(tmp_path / "lm", seed=1)
    config = ModelConfig(name="lm", task="generate", source=str(directory), engine="llama_cpp")
    with pytest.raises(ModelSourceError, match="runs GGUF files"):
        load_llama_cpp(config, resolve_source(config, Path("unused")))
