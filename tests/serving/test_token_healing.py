"""Token healing: prompts that end inside a token, on the tokenizer and through a real server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from shoplm.config import ConfigError, load_serve_config
from shoplm.serving.engine.healing import TokenHealer
from tests.helpers.server import ServerProcess
from tests.helpers.tiny_models import bpe_tokenizer, make_causal_lm

PARTIAL = "wireless headph"  # "headphones" is whole in the tiny tokenizer's vocabulary
WHOLE = "wireless headphones"


def test_healing_takes_back_the_tokens_a_longer_token_starts_with() -> None:
    tokenizer = bpe_tokenizer()
    healer = TokenHealer(tokenizer)
    ids = tokenizer(PARTIAL)["input_ids"]

    healed = healer.heal(ids)

    assert healed is not None
    assert tokenizer.decode(healed.prompt_ids) + healed.prefix == PARTIAL
    removed = "".join(tokenizer.convert_ids_to_tokens(ids[len(healed.prompt_ids):]))
    assert all(token.startswith(removed) for token in tokenizer.convert_ids_to_tokens(list(healed.allowed_first)))
    # The whole word's own token is among the first tokens allowed: the word can be finished.
    whole = tokenizer(WHOLE)["input_ids"]
    assert whole[: len(healed.prompt_ids)] == healed.prompt_ids
    assert whole[len(healed.prompt_ids)] in healed.allowed_first
    # Without healing the prompt's last token is fixed, and it is not how the word begins.
    assert ids[len(healed.prompt_ids)] != whole[len(healed.prompt_ids)]


def test_healing_leaves_prompts_it_cannot_help_alone() -> None:
    tokenizer = bpe_tokenizer()
    healer = TokenHealer(tokenizer)
    ids = tokenizer(PARTIAL)["input_ids"]
    assert healer.heal(ids) is not None

    assert healer.heal(ids[-1:]) is None  # one token: nothing would be left to prefill
    assert healer.heal([*ids, tokenizer.eos_token_id]) is None


def test_token_healing_is_for_generation_models(tmp_path: Path) -> None:
    path = tmp_path / "serve.yaml"
    path.write_text("models:\n  - {name: c, task: classify, source: x, token_healing: true}\n", encoding="utf-8")

    with pytest.raises(ConfigError, match="token_healing is for task 'generate', not 'classify'"):
        load_serve_config(path)


@pytest.fixture(scope="module")
def healing_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, Path]]:
    workdir = tmp_path_factory.mktemp("healing-server")
    model = make_causal_lm(workdir / "gen")
    limits = {"max_input_tokens": 64, "max_new_tokens": 32, "default_max_new_tokens": 8}
    config = {
        "server": {"model_repository": str(workdir / "repo")},
        "models": [
            {"name": "healed", "task": "generate", "source": str(model), "token_healing": True, "limits": limits},
            {"name": "plain", "task": "generate", "source": str(model), "limits": limits},
        ],
    }
    with ServerProcess(workdir, config) as server:
        yield server, model


def test_a_healed_completion_is_the_constrained_greedy_continuation(
    healing_server: tuple[ServerProcess, Path],
) -> None:
    server, directory = healing_server
    client = openai.OpenAI(base_url=f"{server.http_url}/v1", api_key="unused", max_retries=0)
    model = AutoModelForCausalLM.from_pretrained(directory).eval()
    tokenizer = AutoTokenizer.from_pretrained(directory)
    healed = TokenHealer(tokenizer).heal(tokenizer(PARTIAL)["input_ids"])
    assert healed is not None
    start = len(healed.prompt_ids)
    allowed, everything = list(healed.allowed_first), list(range(len(tokenizer)))
    with torch.inference_mode():
        output = model.generate(
            torch.tensor([healed.prompt_ids]), max_new_tokens=11, do_sample=False,
            pad_token_id=tokenizer.pad_token_id,
            prefix_allowed_tokens_fn=lambda _, ids: allowed if ids.shape[0] == start else everything,
        )
    generated = tokenizer.decode(output[0, start:], skip_special_tokens=True)
    assert generated.startswith(healed.prefix)

    response = client.completions.create(model="healed", prompt=PARTIAL, max_tokens=10, temperature=0)
    streamed = client.completions.create(model="healed", prompt=PARTIAL, max_tokens=10, temperature=0, stream=True)
    plain = client.completions.create(model="plain", prompt=PARTIAL, max_tokens=10, temperature=0)

    # The answer goes on from the end of the prompt: the repeated part is not sent back.
    assert response.choices[0].text == generated[len(healed.prefix):]
    assert "".join(chunk.choices[0].text for chunk in streamed if chunk.choices) == response.choices[0].text
    assert response.usage.prompt_tokens == start  # the token taken back counts as generated
    assert plain.usage.prompt_tokens == len(tokenizer(PARTIAL)["input_ids"])


def test_healed_prompts_answer_the_same_alone_and_in_a_busy_batch(healing_server: tuple[ServerProcess, Path]) -> None:
    from concurrent.futures import ThreadPoolExecutor

    server, _ = healing_server
    client = openai.OpenAI(base_url=f"{server.http_url}/v1", api_key="unused", max_retries=0)
    prompts = ["wireless headph", "blue cot", "red runn", "the quick bro", "terrible qual", "这个手", "a great prod"]

    def complete(prompt: str) -> str:
        response = client.completions.create(model="healed", prompt=prompt, max_tokens=8, temperature=0)
        return response.choices[0].text

    alone = [complete(prompt) for prompt in prompts]
    with ThreadPoolExecutor(len(prompts)) as pool:
        together = list(pool.map(complete, prompts))

    assert together == alone
