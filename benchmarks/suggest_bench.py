"""Query completion by the ``suggest`` model, with token healing against without it.

    .venv/bin/python benchmarks/suggest_bench.py [--run runs/suggest]

Trains ``configs/train/suggest.yaml`` into a temporary directory (about a minute) unless
``--run`` names a finished run, then serves its final model twice from one real ``shoplm serve``:
as ``healed`` (``token_healing: true``) and as ``plain``. Every title and query of the demo
catalog's test split gives two prompts: the text cut at a random character ("cut anywhere") and
its first 1 to 6 characters ("typing the start", as in a search box). Each prompt is completed
greedily through ``/v1/completions`` by both models, and the completion is compared with the
rest of the text:

* next 4 characters: the completion's first four characters (fewer if the rest is shorter) are
  the rest's;
* word: the completion finishes the word being typed (up to the next space or comma) as the
  text does;
* whole rest: the completion is the rest of the text exactly.

The demo catalog draws colours, sizes and model numbers at random, so the whole rest is often
not predictable; the first two measure what a search box shows first. Writes
``benchmarks/results/suggest.json`` and a table in ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from benchmarks.readme_section import replace_section  # noqa: E402
from shoplm.data import prepared_corpus_dir  # noqa: E402
from tests.helpers.server import ServerProcess  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
MODELS = ("healed", "plain")
MAX_TOKENS = 16
_WORD = re.compile(r"\s*[^\s,]*")


def prompts(texts: list[str], seed: int = 0) -> dict[str, list[tuple[str, str]]]:
    """(prefix, rest) pairs of each kind; a prefix never ends in a space (the server trims it)."""
    rng = random.Random(seed)
    kinds: dict[str, list[tuple[str, str]]] = {"cut anywhere": [], "typing the start": []}
    for text in texts:
        if len(text) < 4:
            continue
        for kind, cut in (("cut anywhere", rng.randint(1, len(text) - 2)),
                          ("typing the start", rng.randint(1, min(6, len(text) - 2)))):
            prefix = text[:cut].rstrip()
            if prefix:
                kinds[kind].append((prefix, text[len(prefix):]))
    return kinds


def scores(completion: str, rest: str) -> dict[str, bool]:
    """Whether ``completion`` gets the next characters, the word, and the whole of ``rest``."""
    first = min(4, len(rest))
    return {
        "next_4_chars": completion[:first] == rest[:first],
        "word": _word(completion) == _word(rest),
        "whole_rest": completion.strip() == rest.strip(),
    }


def _word(text: str) -> str:
    """The start of ``text`` up to the end of its first word (a space or comma ends it)."""
    match = _WORD.match(text)
    assert match is not None  # the pattern matches the empty string too
    return match.group(0)


def complete(client: httpx.Client, model: str, prompt: str) -> tuple[str, int, float]:
    """The completion's text, its token count and the request's wall time in seconds."""
    started = time.perf_counter()
    response = client.post("/v1/completions", json={
        "model": model, "prompt": prompt, "max_tokens": MAX_TOKENS, "temperature": 0,
    })
    response.raise_for_status()
    body = response.json()
    return body["choices"][0]["text"], body["usage"]["completion_tokens"], time.perf_counter() - started


def train_suggest(workdir: Path) -> Path:
    run = workdir / "suggest"
    command = [sys.executable, "-m", "shoplm", "train", str(ROOT / "configs" / "train" / "suggest.yaml"),
               "--output-dir", str(run)]
    print("training configs/train/suggest.yaml ...", flush=True)
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return run


def measure(run: Path, workdir: Path, cases: dict[str, list[tuple[str, str]]]) -> dict[str, Any]:
    limits = {"max_input_tokens": 64, "max_new_tokens": 32, "default_max_new_tokens": 16}
    source = str(run / "final")
    config = {
        "server": {"model_repository": str(workdir / "repo"), "log_level": "warning"},
        "models": [{"name": name, "task": "generate", "source": source, "token_healing": name == "healed",
                    "limits": limits} for name in MODELS],
    }
    results: dict[str, Any] = {}
    with ServerProcess(workdir, config) as server, httpx.Client(base_url=server.http_url, timeout=60) as client:
        for kind, pairs in cases.items():
            totals = {name: {"next_4_chars": 0, "word": 0, "whole_rest": 0} for name in MODELS}
            latencies: dict[str, list[float]] = {name: [] for name in MODELS}
            tokens: dict[str, list[int]] = {name: [] for name in MODELS}
            examples = []
            for index, (prefix, rest) in enumerate(pairs):
                answers = {}
                for name in MODELS if index % 2 else reversed(MODELS):  # alternate which goes first
                    text, count, seconds = complete(client, name, prefix)
                    answers[name] = text
                    latencies[name].append(seconds)
                    tokens[name].append(count)
                    for key, right in scores(text, rest).items():
                        totals[name][key] += right
                if len(examples) < 8:
                    examples.append({"prompt": prefix, "rest": rest, **answers})
            results[kind] = {
                "n": len(pairs),
                "models": {name: {**{key: value / len(pairs) for key, value in totals[name].items()},
                                  "mean_completion_tokens": statistics.mean(tokens[name]),
                                  "p50_ms": 1000 * statistics.median(latencies[name])} for name in MODELS},
                "examples": examples,
            }
    return results


def markdown(results: dict[str, Any], run_label: str) -> str:
    lines = [
        f"`suggest` ({run_label}), greedy completions of at most {MAX_TOKENS} tokens through `/v1/completions`, "
        "demo catalog test split; 2 CPU cores.",
        "",
        "| prompts | n | model | next 4 characters | word | whole rest | tokens (mean) | p50 ms |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for kind, result in results.items():
        for name in MODELS:
            row = result["models"][name]
            label = "token healing" if name == "healed" else "without"
            lines.append(f"| {kind} | {result['n']} | {label} | {row['next_4_chars']:.3f} | {row['word']:.3f} | "
                         f"{row['whole_rest']:.3f} | {row['mean_completion_tokens']:.1f} | {row['p50_ms']:.1f} |")
    lines.append("")
    for kind, result in results.items():
        healed, plain = result["models"]["healed"], result["models"]["plain"]
        ratio = healed["next_4_chars"] / plain["next_4_chars"] if plain["next_4_chars"] else float("inf")
        lines.append(f"- {kind}: next 4 characters {ratio:.2f}x with token healing; p50 latency "
                     f"{healed['p50_ms'] / plain['p50_ms']:.2f}x")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--run", type=Path, help="a finished suggest run (default: train one now)")
    parser.add_argument("--data", type=Path, help="a prepared catalog directory (default: the bundled one)")
    args = parser.parse_args()
    data = args.data or prepared_corpus_dir("catalog")
    texts = [json.loads(line)["text"] for line in (data / "test.jsonl").read_text(encoding="utf-8").splitlines()]
    cases = prompts(texts)
    with tempfile.TemporaryDirectory() as scratch:
        workdir = Path(scratch)
        run = args.run or train_suggest(workdir)
        results = measure(run, workdir, cases)
    run_label = "the run given" if args.run else "trained from configs/train/suggest.yaml in this run"
    table = markdown(results, run_label)
    print(table)
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {"machine": platform.processor() or platform.machine(), "results": results}
    (RESULTS / "suggest.json").write_text(json.dumps(payload, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    replace_section(ROOT / "benchmarks" / "README.md", "suggest_bench", table)


if __name__ == "__main__":
    main()
