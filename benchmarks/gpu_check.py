"""GPU check of the serving engines: CUDA placement, bf16, greedy identity, engine vs baseline.

Run on a machine with CUDA: ``python benchmarks/gpu_check.py --out results/gpu_check.json``.
It builds a small random Llama (no weights to download), then for float32 and bfloat16:
  * greedy output of 16 prompts from the step-scheduled engine, alone and in one busy batch,
    compared token by token with ``model.generate`` (the baseline) on the same device;
  * decode throughput of the engine with 16 concurrent sequences vs sequential ``generate``;
and finally starts the real server with ``device: cuda`` and calls it over HTTP.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from transformers import LlamaConfig, LlamaForCausalLM

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from shoplm.config import BatchingConfig, ModelConfig
from shoplm.serving.engine.generation import GenerationEngine
from shoplm.serving.engine.sampling import SamplingParams
from shoplm.serving.loading import load_model, resolve_source
from shoplm.serving.metrics import ServerMetrics
from tests.helpers.server import ServerProcess
from tests.helpers.tiny_models import CORPUS, bpe_tokenizer, make_encoder

NEW_TOKENS = 64


def make_llama(directory: Path) -> Path:
    torch.manual_seed(0)
    tokenizer = bpe_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=512, intermediate_size=1376, num_hidden_layers=8,
        num_attention_heads=8, num_key_value_heads=4, max_position_embeddings=1024,
        bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )
    LlamaForCausalLM(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


async def run_engine(engine: GenerationEngine, prompts: list[list[int]], concurrent: bool) -> list[list[int]]:
    greedy = SamplingParams(max_new_tokens=NEW_TOKENS, temperature=0, ignore_eos=True)

    async def one(ids: list[int]) -> list[int]:
        tokens: list[int] = []
        async for event in engine.generate(ids, greedy):
            tokens += event.token_ids
        return tokens

    if concurrent:
        return list(await asyncio.gather(*(one(ids) for ids in prompts)))
    return [await one(ids) for ids in prompts]


def divergence_margin(loaded, prompt: list[int], reference: list[int], row: list[int]) -> float:
    first = next(i for i, (a, b) in enumerate(zip(reference, row, strict=True)) if a != b)
    ids = torch.tensor([prompt + reference[:first]], device=loaded.device)
    with torch.inference_mode():
        logits = loaded.model(input_ids=ids).logits[0, -1].float()
    top = torch.topk(logits, 2).values
    return float(top[0] - top[1])


def check_dtype(directory: Path, dtype: str, device: str) -> dict:
    config = ModelConfig(name="lm", task="generate", source=str(directory), device=device, dtype=dtype)
    loaded = load_model(config, resolve_source(config, Path("unused")))
    prompts = [loaded.tokenizer(text)["input_ids"] for text in CORPUS[:16]]
    started = time.perf_counter()
    reference = []
    for ids in prompts:
        with torch.inference_mode():
            out = loaded.model.generate(
                torch.tensor([ids], device=loaded.device), max_new_tokens=NEW_TOKENS, eos_token_id=None,
                do_sample=False, pad_token_id=loaded.tokenizer.pad_token_id,
            )
        reference.append(out[0, len(ids):].tolist())
    if loaded.device.type == "cuda":
        torch.cuda.synchronize()
    baseline_s = time.perf_counter() - started
    engine = GenerationEngine(model="lm", version="1", loaded=loaded,
                              batching=BatchingConfig(max_num_seqs=16), metrics=ServerMetrics())
    try:
        alone = asyncio.run(run_engine(engine, prompts, concurrent=False))
        timings = []
        for _ in range(3):
            started = time.perf_counter()
            busy = asyncio.run(run_engine(engine, prompts, concurrent=True))
            timings.append(time.perf_counter() - started)
    finally:
        engine.close()

    def agreement(rows: list[list[int]]) -> float:
        same = sum(a == b for row, ref in zip(rows, reference, strict=True) for a, b in zip(row, ref, strict=True))
        return same / (len(prompts) * NEW_TOKENS)

    tokens = len(prompts) * NEW_TOKENS
    margins = [
        divergence_margin(loaded, ids, ref, row) for ids, ref, row in zip(prompts, reference, busy, strict=True)
        if row != ref
    ]
    return {
        "dtype": dtype,
        "param_dtype": str(next(loaded.model.parameters()).dtype),
        "device": str(next(loaded.model.parameters()).device),
        "alone_equals_reference": alone == reference,
        "busy_equals_reference": busy == reference,
        "alone_token_agreement": agreement(alone),
        "busy_token_agreement": agreement(busy),
        "rows_identical_alone_vs_busy": sum(a == b for a, b in zip(alone, busy, strict=True)),
        # For rows that differ from the baseline: the reference model's gap between its top two
        # logits where they first part. A gap near zero is a tie broken by rounding, not a bug.
        "divergence_top2_logit_gaps": [round(m, 5) for m in margins],
        "baseline_sequential_generate_tokens_per_s": round(tokens / baseline_s, 1),
        "engine_16_concurrent_tokens_per_s_median": round(tokens / statistics.median(timings), 1),
        "speedup_vs_baseline": round(baseline_s / statistics.median(timings), 2),
    }


def check_server(directory: Path, workdir: Path, device: str) -> dict:
    import httpx

    embed_dir = make_encoder(workdir / "embed", "embed")
    config = {
        "server": {"model_repository": str(workdir / "repo")},
        "models": [
            {"name": "lm", "task": "generate", "source": str(directory), "device": device, "dtype": "bfloat16"},
            {"name": "embed", "task": "embed", "source": str(embed_dir), "device": device},
        ],
    }
    source_path = str(Path(__file__).resolve().parents[1] / "src")
    server = ServerProcess(workdir, config, env={"PYTHONPATH": os.pathsep.join(
        [source_path, os.environ.get("PYTHONPATH", "")])})
    result: dict = {}
    try:
        server.start()
        url = server.http_url
        completion = httpx.post(f"{url}/v1/completions", json={"model": "lm", "prompt": "red shoes", "max_tokens": 8,
                                                               "temperature": 0}, timeout=60)
        embedding = httpx.post(f"{url}/v1/embeddings", json={"model": "embed", "input": ["a", "b"]}, timeout=60)
        admin = httpx.get(f"{url}/admin/models", timeout=10).json()
        result = {
            "completion_status": completion.status_code,
            "completion_tokens": completion.json().get("usage", {}).get("completion_tokens"),
            "embedding_status": embedding.status_code,
            "embedding_dim": len(embedding.json()["data"][0]["embedding"]) if embedding.status_code == 200 else None,
            "devices": {m["name"]: m["device"] for m in admin["models"]},
        }
    except (RuntimeError, TimeoutError, httpx.HTTPError) as error:
        result["error"] = repr(error)
        result["log_tail"] = server.log_text()[-3000:]
    finally:
        result["exit_code"] = server.terminate() if server.process else None
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/gpu_check.json"))
    parser.add_argument("--device", default="cuda", help="'cpu' runs the same checks without a GPU.")
    args = parser.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit("no CUDA device: run on a GPU machine or pass --device cpu")
    gpu = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else None
    report: dict = {"device": args.device, "gpu": gpu, "torch": torch.__version__}
    with tempfile.TemporaryDirectory() as temp:
        directory = make_llama(Path(temp) / "llama")
        args.out.parent.mkdir(parents=True, exist_ok=True)
        report["engines"] = []
        for dtype in ("float32", "bfloat16"):
            report["engines"].append(check_dtype(directory, dtype, args.device))
            args.out.write_text(json.dumps(report, indent=2))
        report["server"] = check_server(directory, Path(temp), args.device)
    args.out.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
