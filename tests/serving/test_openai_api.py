"""The OpenAI-compatible routes, called with the official ``openai`` client."""

from __future__ import annotations

import base64
from pathlib import Path

import numpy as np
import openai
import pytest
import torch
from transformers import AutoModel, AutoModelForCausalLM, AutoTokenizer

from tests.helpers.server import ServerProcess


@pytest.fixture(scope="module")
def client(tiny_server: ServerProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{tiny_server.http_url}/v1", api_key="unused", max_retries=0)


@pytest.fixture(scope="module")
def reference_lm(tiny_models_root: Path) -> tuple[AutoModelForCausalLM, AutoTokenizer]:
    directory = tiny_models_root / "gen"
    return AutoModelForCausalLM.from_pretrained(directory).eval(), AutoTokenizer.from_pretrained(directory)


def greedy_reference(reference_lm: tuple, prompt_ids: list[int], max_new_tokens: int) -> str:
    model, tokenizer = reference_lm
    with torch.inference_mode():
        output = model.generate(
            torch.tensor([prompt_ids]), max_new_tokens=max_new_tokens, do_sample=False,
            pad_token_id=tokenizer.pad_token_id,
        )
    return tokenizer.decode(output[0, len(prompt_ids):], skip_special_tokens=True)


def chat_prompt_ids(reference_lm: tuple, content: str) -> list[int]:
    _, tokenizer = reference_lm
    encoded = tokenizer.apply_chat_template([{"role": "user", "content": content}], add_generation_prompt=True)
    return list(encoded if isinstance(encoded, list) else encoded["input_ids"])


def test_models_lists_every_loaded_model(client: openai.OpenAI) -> None:
    models = {model.id: model for model in client.models.list().data}

    assert set(models) == {"embed", "classify", "fill", "gen"}
    assert models["gen"].model_extra["task"] == "generate"


def test_chat_greedy_matches_transformers_generate(client: openai.OpenAI, reference_lm: tuple) -> None:
    prompt_ids = chat_prompt_ids(reference_lm, "red running shoes")
    expected = greedy_reference(reference_lm, prompt_ids, 12)

    response = client.chat.completions.create(
        model="gen", messages=[{"role": "user", "content": "red running shoes"}], max_tokens=12, temperature=0
    )

    assert response.choices[0].message.content == expected
    assert response.choices[0].message.role == "assistant"
    assert response.usage.prompt_tokens == len(prompt_ids)
    assert response.usage.total_tokens == response.usage.prompt_tokens + response.usage.completion_tokens
    assert response.choices[0].finish_reason in {"stop", "length"}


def test_chat_stream_yields_the_same_text_as_a_plain_call(client: openai.OpenAI) -> None:
    messages = [{"role": "user", "content": "blue cotton shirt"}]
    plain = client.chat.completions.create(model="gen", messages=messages, max_tokens=16, temperature=0)

    chunks = list(
        client.chat.completions.create(
            model="gen", messages=messages, max_tokens=16, temperature=0, stream=True,
            stream_options={"include_usage": True},
        )
    )

    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == plain.choices[0].message.content
    assert chunks[0].choices[0].delta.role == "assistant"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == [plain.choices[0].finish_reason]
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == plain.usage.completion_tokens


def test_completion_greedy_matches_reference(client: openai.OpenAI, reference_lm: tuple) -> None:
    _, tokenizer = reference_lm
    prompt_ids = tokenizer("wireless headphones")["input_ids"]
    expected = greedy_reference(reference_lm, prompt_ids, 10)

    response = client.completions.create(model="gen", prompt="wireless headphones", max_tokens=10, temperature=0)

    assert response.choices[0].text == expected
    assert response.usage.prompt_tokens == len(prompt_ids)


def test_n_choices_come_from_one_request(client: openai.OpenAI) -> None:
    def sampled(stream: bool = False) -> list[str]:
        response = client.completions.create(
            model="gen", prompt="the quick", max_tokens=12, temperature=1.0, seed=11, n=3, stream=stream,
        )
        if not stream:
            assert [choice.index for choice in response.choices] == [0, 1, 2]
            return [choice.text for choice in response.choices]
        texts = ["", "", ""]
        for chunk in response:
            for choice in chunk.choices:
                texts[choice.index] += choice.text
        return texts

    one = client.completions.create(model="gen", prompt="the quick", max_tokens=12, temperature=1.0, seed=11)
    greedy = client.completions.create(model="gen", prompt="the quick", max_tokens=12, temperature=0, n=2)

    choices = sampled()
    assert choices == sampled() == sampled(stream=True)  # seeded: choice i samples with seed + i
    assert choices[0] == one.choices[0].text and len(set(choices)) > 1
    assert greedy.choices[0].text == greedy.choices[1].text
    assert greedy.usage.completion_tokens == 2 * client.completions.create(
        model="gen", prompt="the quick", max_tokens=12, temperature=0).usage.completion_tokens


def test_chat_stream_with_two_choices_opens_both(client: openai.OpenAI) -> None:
    chunks = list(client.chat.completions.create(
        model="gen", messages=[{"role": "user", "content": "blue cotton shirt"}], max_tokens=8, temperature=0,
        n=2, stream=True, stream_options={"include_usage": True},
    ))

    assert [(c.index, c.delta.role) for c in chunks[0].choices] == [(0, "assistant"), (1, "assistant")]
    finished = sorted(c.choices[0].index for c in chunks if c.choices and c.choices[0].finish_reason)
    assert finished == [0, 1]
    texts = ["", ""]
    for chunk in chunks[1:]:
        for choice in chunk.choices:
            texts[choice.index] += choice.delta.content or ""
    assert texts[0] == texts[1]  # greedy
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


def test_seeded_sampling_is_reproducible(client: openai.OpenAI) -> None:
    def sample(seed: int) -> str:
        response = client.completions.create(
            model="gen", prompt="the quick", max_tokens=16, temperature=1.0, top_p=0.95, seed=seed,
            extra_body={"top_k": 50},
        )
        return response.choices[0].text

    assert sample(7) == sample(7)
    assert len({sample(seed) for seed in range(1, 5)}) > 1


@pytest.mark.parametrize(
    "sampling",
    [{"temperature": 1e-45}, {"temperature": 5e-324}, {"top_p": 5e-324}, {"top_p": 1e-300, "temperature": 2.0}],
    ids=str,
)
def test_extreme_valid_sampling_values_pick_the_greedy_text(
    client: openai.OpenAI, reference_lm: tuple, sampling: dict[str, float]
) -> None:
    # Values the schema allows but float32 cannot hold (they round to 0) once made every request of
    # the batch fail with NaN probabilities. A near-zero temperature or top_p keeps only the top token.
    prompt_ids = chat_prompt_ids(reference_lm, "red running shoes")
    expected = greedy_reference(reference_lm, prompt_ids, 8)

    response = client.chat.completions.create(
        model="gen", messages=[{"role": "user", "content": "red running shoes"}], max_tokens=8, seed=3, **sampling
    )

    assert response.choices[0].message.content == expected


def test_stop_sequence_cuts_the_text_before_it(client: openai.OpenAI) -> None:
    free = client.completions.create(model="gen", prompt="red", max_tokens=24, temperature=0).choices[0].text
    stop = free[len(free) // 2 : len(free) // 2 + 2]
    if len(free) < 4 or not stop.strip():
        pytest.skip(f"the tiny model's greedy text is too short to cut: {free!r}")

    response = client.completions.create(model="gen", prompt="red", max_tokens=24, temperature=0, stop=[stop])

    assert response.choices[0].text == free[: free.index(stop)]
    assert response.choices[0].finish_reason == "stop"


def test_embeddings_match_mean_pooled_reference(client: openai.OpenAI, tiny_models_root: Path) -> None:
    texts = ["red running shoes", "质量太差了"]
    directory = tiny_models_root / "embed"
    model, tokenizer = AutoModel.from_pretrained(directory).eval(), AutoTokenizer.from_pretrained(directory)
    expected = []
    for text in texts:
        encoded = tokenizer(text, return_tensors="pt")
        with torch.inference_mode():
            hidden = model(**encoded).last_hidden_state[0]
        expected.append(torch.nn.functional.normalize(hidden.mean(dim=0), dim=0).numpy())

    response = client.embeddings.create(model="embed", input=texts, encoding_format="float")

    vectors = np.array([item.embedding for item in response.data])
    assert vectors.shape == (2, 32)
    np.testing.assert_allclose(vectors, np.stack(expected), atol=1e-5)
    assert [item.index for item in response.data] == [0, 1]


def test_embeddings_base64_equals_float(tiny_server: ServerProcess) -> None:
    import httpx

    body = {"model": "embed", "input": "blue shirt"}
    as_float = httpx.post(f"{tiny_server.http_url}/v1/embeddings", json=body).json()
    as_base64 = httpx.post(f"{tiny_server.http_url}/v1/embeddings", json={**body, "encoding_format": "base64"}).json()

    decoded = np.frombuffer(base64.b64decode(as_base64["data"][0]["embedding"]), dtype="<f4")
    np.testing.assert_allclose(decoded, np.array(as_float["data"][0]["embedding"], dtype=np.float32), rtol=0, atol=0)


def test_openai_client_sees_errors_as_typed_exceptions(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as not_found:
        client.embeddings.create(model="no-such-model", input="x")
    with pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(model="gen", messages=[{"role": "user", "content": "x"}], max_tokens=10**6)

    assert "no-such-model" in str(not_found.value)
    assert "max_tokens" in str(bad.value) and "64" in str(bad.value)
