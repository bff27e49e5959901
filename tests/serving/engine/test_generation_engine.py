"""The step-scheduled generation engine, in process, on a tiny GPT-2."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import torch

from shoplm.config import BatchingConfig, ModelConfig
from shoplm.serving.engine.generation import GenerationEngine
from shoplm.serving.engine.sampling import SamplingParams
from shoplm.serving.errors import ServerBusyError
from shoplm.serving.loading import load_model, resolve_source
from shoplm.serving.metrics import ServerMetrics
from tests.helpers.tiny_models import make_causal_lm

PROMPTS = ["red running shoes", "a", "blue cotton shirt with long sleeves and", "质量太差了"]


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory):
    directory = make_causal_lm(tmp_path_factory.mktemp("lm") / "gen", seed=3)
    config = ModelConfig(name="gen", task="generate", source=str(directory))
    return load_model(config, resolve_source(config, Path("unused")))


def make_engine(loaded, **batching: int) -> GenerationEngine:
    return GenerationEngine(
        model="gen", version="1", loaded=loaded, batching=BatchingConfig(**batching), metrics=ServerMetrics()
    )


def reference(loaded, prompt_ids: list[int], max_new_tokens: int) -> list[int]:
    with torch.inference_mode():
        output = loaded.model.generate(
            torch.tensor([prompt_ids]), max_new_tokens=max_new_tokens, do_sample=False,
            pad_token_id=loaded.tokenizer.pad_token_id,
        )
    tokens = output[0, len(prompt_ids):].tolist()
    eos = loaded.tokenizer.eos_token_id
    return tokens[: tokens.index(eos)] if eos in tokens else tokens


async def collect(engine: GenerationEngine, prompt_ids: list[int], params: SamplingParams, delay: float = 0.0):
    await asyncio.sleep(delay)
    tokens, text, finish = [], "", None
    async for event in engine.generate(prompt_ids, params):
        tokens += event.token_ids
        text += event.text
        finish = event.finish_reason
    return tokens, text, finish


def run_alone_then_busy(engine: GenerationEngine, prompts: list[list[int]], params: SamplingParams, spacing: float):
    """Each prompt alone, then all with staggered arrivals (later ones join while earlier ones
    decode); closes the engine. Returns (alone, busy) lists of (tokens, text, finish)."""

    async def run():
        alone = [await collect(engine, ids, params) for ids in prompts]
        busy = await asyncio.gather(*(collect(engine, ids, params, delay=spacing * i) for i, ids in enumerate(prompts)))
        return alone, busy

    try:
        return asyncio.run(run())
    finally:
        engine.close()


def leave_after_first_token_then_generate(engine: GenerationEngine, ids: list[int]):
    """A client that disconnects after its first token, then a 3-token request on the freed slot;
    closes the engine. Returns the second request's (tokens, text, finish)."""

    async def run():
        stream = engine.generate(ids, SamplingParams(max_new_tokens=400, ignore_eos=True))
        await anext(stream)
        await stream.aclose()  # the client disconnects after the first token
        return await asyncio.wait_for(collect(engine, ids, SamplingParams(max_new_tokens=3, ignore_eos=True)), 60)

    try:
        return asyncio.run(run())
    finally:
        engine.close()


def test_greedy_output_is_identical_alone_and_in_a_busy_batch(loaded) -> None:
    engine = make_engine(loaded, max_num_seqs=8)
    prompts = [loaded.tokenizer(p)["input_ids"] for p in PROMPTS]
    expected = [reference(loaded, ids, 20) for ids in prompts]
    greedy = SamplingParams(max_new_tokens=20, temperature=0)

    alone, busy = run_alone_then_busy(engine, prompts, greedy, spacing=0.002)

    assert [tokens for tokens, _, _ in alone] == expected
    assert [tokens for tokens, _, _ in busy] == expected
    assert [text for _, text, _ in busy] == [loaded.tokenizer.decode(t, skip_special_tokens=True) for t in expected]


def test_finish_reason_length_and_token_count(loaded) -> None:
    engine = make_engine(loaded)
    ids = loaded.tokenizer("red")["input_ids"]

    try:
        tokens, _, finish = asyncio.run(collect(engine, ids, SamplingParams(max_new_tokens=5, ignore_eos=True)))
    finally:
        engine.close()

    assert len(tokens) == 5
    assert finish == "length"


def test_a_client_that_leaves_frees_its_slot(loaded) -> None:
    engine = make_engine(loaded, max_num_seqs=1)
    ids = loaded.tokenizer("red")["input_ids"]

    tokens, _, finish = leave_after_first_token_then_generate(engine, ids)

    assert (len(tokens), finish) == (3, "length")


def test_full_queue_raises_server_busy_with_retry_after(loaded) -> None:
    engine = make_engine(loaded, max_num_seqs=1, max_queue_size=1)
    ids = loaded.tokenizer("red")["input_ids"]
    long = SamplingParams(max_new_tokens=200, ignore_eos=True)

    async def run():
        first = asyncio.create_task(collect(engine, ids, long))
        await asyncio.sleep(0.05)  # the first is running; the next one waits in the queue
        second = asyncio.create_task(collect(engine, ids, long))
        await asyncio.sleep(0.01)
        with pytest.raises(ServerBusyError) as busy:
            await collect(engine, ids, long)
        first.cancel()
        second.cancel()
        await asyncio.gather(first, second, return_exceptions=True)
        return busy.value

    try:
        error = asyncio.run(run())
    finally:
        engine.close(drain=False)

    assert error.retry_after_s >= 1
    assert "max_queue_size=1" in error.message
