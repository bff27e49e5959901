"""Would llama.cpp serve SmolLM2's GGUF better on this CPU? Both measured in one run.

    .venv/bin/pip install 'llama-cpp-python>=0.3' diskcache   # builds llama.cpp (minutes)
    .venv/bin/python benchmarks/llamacpp_eval.py

Compares, for the same GGUF file (SmolLM2-135M-Instruct, Q4_1) and the same chat prompts:

* llama.cpp through llama-cpp-python, computing on the quantized weights, one request at a time;
* transformers ``generate`` on the de-quantized checkpoint the model server loads, in float32
  and bfloat16, one request at a time (the server's engine adds batching on top of this).

It reports decode tokens/s for a lone request, and how often the two greedy answers agree token
for token (the quantized arithmetic can change a small model's answer). Writes
``benchmarks/results/llamacpp_eval.json``.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from shoplm.serving.loading import PACKAGED_MODELS, ResolvedSource, package_directory, plain_checkpoint  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "llamacpp_eval.json"
PROMPTS = [
    "Write a short product description for red running shoes.",
    "What is the capital of France?",
    "Suggest three gifts for a coffee lover.",
    "Summarise this review: the headphones sound great but the case broke after a week.",
]
NEW_TOKENS = 48


def llama_cpp_runs(gguf: Path) -> tuple[list[float], list[str]]:
    from llama_cpp import Llama

    llm = Llama(model_path=str(gguf), n_ctx=2048, n_threads=os.cpu_count() or 1, verbose=False)
    rates, answers = [], []
    for prompt in PROMPTS:
        started = time.perf_counter()
        out = llm.create_chat_completion(messages=[{"role": "user", "content": prompt}], max_tokens=NEW_TOKENS,
                                         temperature=0)
        elapsed = time.perf_counter() - started
        rates.append(out["usage"]["completion_tokens"] / elapsed)
        answers.append(str(out["choices"][0]["message"]["content"]))
    return rates, answers


def transformers_runs(checkpoint: Path, dtype: torch.dtype) -> tuple[list[float], list[str]]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    model = AutoModelForCausalLM.from_pretrained(checkpoint, dtype=dtype).eval()
    rates, answers = [], []
    for prompt in PROMPTS:
        ids = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                            return_tensors="pt", return_dict=True)
        started = time.perf_counter()
        with torch.inference_mode():
            output = model.generate(**ids, max_new_tokens=NEW_TOKENS, do_sample=False)
        elapsed = time.perf_counter() - started
        new = output[0, ids["input_ids"].shape[1]:]
        rates.append(len(new) / elapsed)
        answers.append(tokenizer.decode(new, skip_special_tokens=True))
    return rates, answers


def main() -> None:
    package, gguf_file = PACKAGED_MODELS["smollm2"]
    source = ResolvedSource(package_directory(package), gguf_file, "1")
    checkpoint = plain_checkpoint(source)
    results: dict[str, Any] = {"cpus": os.cpu_count(), "new_tokens": NEW_TOKENS, "prompts": PROMPTS}
    answers: dict[str, list[str]] = {}
    for name, run in (
        ("llama_cpp_q4_1", lambda: llama_cpp_runs(source.directory / gguf_file)),
        ("transformers_float32", lambda: transformers_runs(checkpoint, torch.float32)),
        ("transformers_bfloat16", lambda: transformers_runs(checkpoint, torch.bfloat16)),
    ):
        run()  # warm-up: first-call allocations and kernel selection
        rates, answers[name] = run()
        results[name] = {"tokens_per_s": rates, "median_tokens_per_s": statistics.median(rates)}
    reference = answers["transformers_float32"]
    results["answers"] = answers
    results["same_answer_as_float32"] = {
        name: sum(a == b for a, b in zip(texts, reference, strict=True)) for name, texts in answers.items()
    }
    results["lone_request_speedup_llama_cpp_vs_float32"] = (
        results["llama_cpp_q4_1"]["median_tokens_per_s"] / results["transformers_float32"]["median_tokens_per_s"]
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    for name in ("llama_cpp_q4_1", "transformers_float32", "transformers_bfloat16"):
        print(f"{name:>22}: {results[name]['median_tokens_per_s']:7.1f} tok/s (median, lone request), "
              f"same greedy answer as float32 on {results['same_answer_as_float32'][name]}/{len(PROMPTS)} prompts")


if __name__ == "__main__":
    main()
