"""Near-duplicate removal of ``shoplm data prepare`` against datasketch's ``MinHashLSH``.

    .venv/bin/python benchmarks/dedup_bench.py [--rows 200000] [--repeats 3]

Both sides run the same code up to the index: shoplm's fingerprint text, shingles and datasketch
MinHash signatures, the same bands (datasketch's choice for the lowered index threshold) and
the same confirmation by the signatures' estimated similarity. The baseline indexes the
signatures in ``datasketch.MinHashLSH``, as ``NearDuplicateFilter`` did before; shoplm keeps them
in one numpy array and a dict of band keys. The rows are Chinese-like texts of 20 to 80
characters drawn at random, a tenth of them edited copies of an earlier row (a character
changed, dropped or added, punctuation or spaces changed), so that the decisions can be checked.

Reported: the wall time of one pass over the rows (median of ``--repeats``, runs alternating),
the peak of the memory Python allocates (tracemalloc, a separate pass), and whether the two
index the same rows as duplicates. Writes ``benchmarks/results/dedup.json`` and a table in
``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from datasketch import MinHashLSH  # noqa: E402

from benchmarks.readme_section import replace_section  # noqa: E402
from shoplm.data.dedup import _INDEX_THRESHOLD_FACTOR, NearDuplicateFilter  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
THRESHOLD, NUM_PERM, SHINGLE_SIZE, MIN_CHARS = 0.9, 128, 4, 20  # shoplm data prepare's defaults
CHARACTERS = (
    "的一是不了人我在有他这为之大来以个中上们到说国和地也子时道出而要于就"
    "下得可你年生自会那后能对着事其里所去行过家"
)
PUNCTUATION = ",。!? "


class DatasketchFilter(NearDuplicateFilter):
    """The baseline: the same signatures and check, indexed in ``datasketch.MinHashLSH``."""

    def __init__(self) -> None:
        super().__init__(THRESHOLD, NUM_PERM, SHINGLE_SIZE, MIN_CHARS)
        self._index = MinHashLSH(threshold=THRESHOLD * _INDEX_THRESHOLD_FACTOR, num_perm=NUM_PERM)
        self._kept_signatures: list[Any] = []

    def is_duplicate(self, text: str) -> bool:
        minhash = self.minhash(text)
        if minhash is None:
            return False
        signature = minhash.hashvalues
        for candidate in self._index.query(minhash):
            if np.mean(self._kept_signatures[candidate] == signature) >= self._threshold:
                return True
        self._index.insert(len(self._kept_signatures), minhash, check_duplication=False)
        self._kept_signatures.append(signature)
        return False


def shoplm_filter() -> NearDuplicateFilter:
    return NearDuplicateFilter(THRESHOLD, NUM_PERM, SHINGLE_SIZE, MIN_CHARS)


def make_rows(count: int, seed: int = 0) -> tuple[list[str], set[int]]:
    """Random texts, a tenth of them light edits of an earlier one (their indices returned)."""
    rng = random.Random(seed)
    rows: list[str] = []
    edited: set[int] = set()
    for index in range(count):
        if rows and rng.random() < 0.1:
            text = list(rng.choice(rows))
            position = rng.randrange(len(text))
            edit = rng.randrange(4)
            if edit == 0:
                text[position] = rng.choice(CHARACTERS)
            elif edit == 1:
                del text[position]
            elif edit == 2:
                text.insert(position, rng.choice(CHARACTERS))
            else:
                text.insert(position, rng.choice(PUNCTUATION))
            rows.append("".join(text))
            edited.add(index)
        else:
            rows.append("".join(rng.choice(CHARACTERS) for _ in range(rng.randint(20, 80))))
    return rows, edited


def one_pass(make: Callable[[], NearDuplicateFilter], rows: list[str]) -> tuple[float, list[int]]:
    near = make()
    start = time.perf_counter()
    dropped = [index for index, text in enumerate(rows) if near.is_duplicate(text)]
    return time.perf_counter() - start, dropped


def peak_bytes(make: Callable[[], NearDuplicateFilter], rows: list[str]) -> int:
    tracemalloc.start()
    near = make()
    for text in rows:
        near.is_duplicate(text)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    rows, edited = make_rows(args.rows)
    sides: dict[str, Callable[[], NearDuplicateFilter]] = {"shoplm": shoplm_filter, "datasketch": DatasketchFilter}
    times: dict[str, list[float]] = {name: [] for name in sides}
    dropped: dict[str, list[int]] = {}
    for repeat in range(args.repeats):
        for name, make in sides.items() if repeat % 2 == 0 else reversed(sides.items()):
            seconds, dropped[name] = one_pass(make, rows)
            times[name].append(seconds)
            print(f"{name}: {seconds:.1f} s, {len(dropped[name])} dropped", flush=True)
    peaks = {name: peak_bytes(make, rows) for name, make in sides.items()}

    results: dict[str, Any] = {
        "rows": args.rows,
        "edited_copies": len(edited),
        "settings": {
            "threshold": THRESHOLD, "num_perm": NUM_PERM, "shingle_size": SHINGLE_SIZE, "min_chars": MIN_CHARS,
        },
        "machine": f"{platform.processor() or platform.machine()}, python {platform.python_version()}",
        "same_decisions": dropped["shoplm"] == dropped["datasketch"],
        "sides": {
            name: {
                "median_seconds": statistics.median(times[name]),
                "rows_per_second": args.rows / statistics.median(times[name]),
                "peak_bytes_per_row": peaks[name] / args.rows,
                "dropped": len(dropped[name]),
                "edited_copies_dropped": len(edited.intersection(dropped[name])),
            }
            for name in sides
        },
    }
    shoplm, baseline = results["sides"]["shoplm"], results["sides"]["datasketch"]
    results["speedup"] = baseline["median_seconds"] / shoplm["median_seconds"]
    results["memory_ratio"] = baseline["peak_bytes_per_row"] / shoplm["peak_bytes_per_row"]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "dedup.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")

    lines = [
        f"{args.rows:,} rows, {len(edited):,} of them edited copies of an earlier row; median of {args.repeats} "
        "passes each, runs alternating.",
        "",
        "| index | rows/s | peak memory per row | rows dropped | edited copies dropped |",
        "|---|---|---|---|---|",
    ]
    labels = {"shoplm": "shoplm (numpy signatures, dict of band keys)", "datasketch": "datasketch MinHashLSH"}
    for name, label in labels.items():
        side = results["sides"][name]
        lines.append(
            f"| {label} | {side['rows_per_second']:,.0f} | {side['peak_bytes_per_row'] / 1024:.2f} KiB "
            f"| {side['dropped']:,} | {side['edited_copies_dropped']:,} |"
        )
    lines += [
        "",
        f"shoplm: {results['speedup']:.2f}x the rows/s, {results['memory_ratio']:.2f}x less memory; "
        f"same rows dropped: {'yes' if results['same_decisions'] else '**no**'}.",
    ]
    table = "\n".join(lines)
    replace_section(ROOT / "benchmarks" / "README.md", "dedup_bench", table)
    print(table)


if __name__ == "__main__":
    main()
