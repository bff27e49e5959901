"""The bundled real models behind the real server: SmolLM2 chat and MiniLM embeddings."""

from __future__ import annotations

import importlib.util
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import openai
import pytest
import tritonclient.grpc as triton_grpc

from tests.helpers.server import ServerProcess

pytestmark = pytest.mark.real_models

REPO_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "serve.yaml"
HAS_LLAMA_CPP = importlib.util.find_spec("llama_cpp") is not None


@pytest.fixture(scope="module")
def real_server(tmp_path_factory: pytest.TempPathFactory):
    import yaml

    config = yaml.safe_load(REPO_CONFIG.read_text())
    workdir = tmp_path_factory.mktemp("real")
    config["server"]["model_repository"] = str(workdir / "repo")
    chat = next(model for model in config["models"] if model["name"] == "chat")
    # The shipped chat and embed models ("auto": bfloat16 on CPUs with AVX512-BF16 or AMX) plus
    # float32 twins: the chat twin's memory glibc hands back to the OS in full when it is unloaded.
    config["models"].append({**chat, "name": "chat-fp32", "dtype": "float32"})
    embed = next(model for model in config["models"] if model["name"] == "embed")
    config["models"].append({**embed, "name": "embed-fp32", "dtype": "float32"})
    if HAS_LLAMA_CPP:
        config["models"].append({
            **chat, "name": "chat-llamacpp", "engine": "llama_cpp",
            "limits": {"max_input_tokens": 512, "max_new_tokens": 64, "default_max_new_tokens": 32},
            "batching": {"max_num_seqs": 4},
        })
    with ServerProcess(workdir, config) as server:
        yield server


@pytest.mark.parametrize("model", ["chat", "chat-fp32"])
def test_smollm2_answers_a_factual_question(real_server: ServerProcess, model: str) -> None:
    client = openai.OpenAI(base_url=f"{real_server.http_url}/v1", api_key="x", max_retries=0)

    response = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "What is the capital of France?"}],
        max_tokens=20, temperature=0,
    )

    assert "Paris" in response.choices[0].message.content
    assert response.usage.prompt_tokens > 20  # the chat template's system prompt is applied


def test_smollm2_streams_tokens_as_they_are_decoded(real_server: ServerProcess) -> None:
    client = openai.OpenAI(base_url=f"{real_server.http_url}/v1", api_key="x", max_retries=0)

    chunks = list(client.chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "Name three colours."}],
        max_tokens=24, temperature=0, stream=True,
    ))

    content_chunks = [c for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(content_chunks) >= 10  # one event per decoded token, not one blob at the end


@pytest.mark.skipif(not HAS_LLAMA_CPP, reason="the optional extra shoplm[llamacpp] is not installed")
def test_the_llama_cpp_engine_streams_concurrent_chats_like_lone_ones(real_server: ServerProcess) -> None:
    client = openai.OpenAI(base_url=f"{real_server.http_url}/v1", api_key="x", max_retries=0)
    questions = ["Name three colours.", "What is a good running shoe?", "Say hello.", "Describe green tea."]

    def ask(question: str, stream: bool) -> str:
        messages = [{"role": "user", "content": question}]
        if not stream:
            answer = client.chat.completions.create(
                model="chat-llamacpp", messages=messages, max_tokens=16, temperature=0)
            return str(answer.choices[0].message.content)
        chunks = client.chat.completions.create(
            model="chat-llamacpp", messages=messages, max_tokens=16, temperature=0, stream=True)
        return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)

    alone = [ask(question, stream=False) for question in questions]
    with ThreadPoolExecutor(len(questions)) as pool:
        together = list(pool.map(lambda question: ask(question, stream=True), questions))

    assert all(alone) and together == alone
    models = httpx.get(f"{real_server.http_url}/admin/models").json()
    entry = next(m for m in models["models"] if m["name"] == "chat-llamacpp")
    assert entry["state"] == "ready" and entry["memory_bytes"] > 50_000_000  # the GGUF's weights
    # Unloading frees llama.cpp's model and context; a reload answers the same.
    httpx.post(f"{real_server.http_url}/admin/models/chat-llamacpp/unload", timeout=60).raise_for_status()
    httpx.post(f"{real_server.http_url}/admin/models/chat-llamacpp/load", timeout=300).raise_for_status()
    assert ask(questions[0], stream=False) == alone[0]


def test_minilm_embeddings_rank_related_products_closer(real_server: ServerProcess) -> None:
    client = openai.OpenAI(base_url=f"{real_server.http_url}/v1", api_key="x", max_retries=0)
    texts = ["red running shoes", "crimson sneakers for jogging", "chocolate cake recipe"]

    response = client.embeddings.create(model="embed", input=texts)

    vectors = np.array([d.embedding for d in response.data])
    assert vectors.shape == (3, 384)
    related, unrelated = vectors[0] @ vectors[1], vectors[0] @ vectors[2]
    assert related > unrelated + 0.2


def test_shipped_embeddings_stay_close_to_float32(real_server: ServerProcess) -> None:
    texts = ["red running shoes", "这个手机很好用，物流也很快", "stainless steel water bottle, 750 ml"]

    def vectors(model: str) -> np.ndarray:
        body = httpx.post(f"{real_server.http_url}/v1/embeddings", json={"model": model, "input": texts}).json()
        return np.array([item["embedding"] for item in body["data"]])

    shipped, reference = vectors("embed"), vectors("embed-fp32")
    assert shipped.shape == reference.shape == (3, 384)
    assert ((shipped * reference).sum(axis=1) > 0.999).all()  # unit vectors: the dot is the cosine


def test_grpc_embeddings_equal_http_embeddings(real_server: ServerProcess) -> None:
    client = triton_grpc.InferenceServerClient(real_server.grpc_address)
    text = triton_grpc.InferInput("text", [1], "BYTES")
    text.set_data_from_numpy(np.array([b"wireless headphones"], dtype=object))

    over_grpc = client.infer("embed", [text]).as_numpy("embedding")
    over_http = httpx.post(f"{real_server.http_url}/v1/embeddings",
                           json={"model": "embed", "input": "wireless headphones"}).json()

    np.testing.assert_allclose(over_grpc[0], over_http["data"][0]["embedding"], atol=1e-6)


def test_unloading_returns_the_memory(real_server: ServerProcess) -> None:
    def admin() -> dict:
        return httpx.get(f"{real_server.http_url}/admin/models").json()

    def rss() -> int:
        return int(admin()["process"]["rss_bytes"])

    loaded = rss()
    unloaded_entry = httpx.post(f"{real_server.http_url}/admin/models/chat-fp32/unload", timeout=60).json()
    after_unload = rss()
    httpx.post(f"{real_server.http_url}/admin/models/chat-fp32/load", timeout=300).raise_for_status()
    after_reload = rss()
    cycles = 3
    for _ in range(cycles):  # further cycles of the bfloat16 model reuse the memory they free
        httpx.post(f"{real_server.http_url}/admin/models/chat/unload", timeout=60).raise_for_status()
        httpx.post(f"{real_server.http_url}/admin/models/chat/load", timeout=300).raise_for_status()
    after_cycles = rss()
    bf16_weights = next(m["memory_bytes"] for m in admin()["models"] if m["name"] == "chat")

    assert unloaded_entry["state"] == "unloaded"
    # SmolLM2 holds about 540 MB of float32 weights; most of it must go back to the OS.
    assert loaded - after_unload > 300 * 2**20
    assert after_reload - after_unload > 300 * 2**20
    # A leak of the weights on each cycle would add `cycles` copies; allocator slack stays
    # below one copy however many cycles run.
    assert bf16_weights > 200 * 2**20
    assert after_cycles - after_reload < bf16_weights
