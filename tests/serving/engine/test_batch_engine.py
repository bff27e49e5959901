"""Dynamic batching of encoder inputs, in process, with a recording runner."""

from __future__ import annotations

import asyncio
import threading
import time

import torch

from shoplm.config import BatchingConfig
from shoplm.serving.engine.batching import BatchEngine
from shoplm.serving.metrics import ServerMetrics
from shoplm.textproc import EncodedBatch


class RecordingRunner:
    """Stands in for a model: records batch sizes, answers each row with its token count."""

    def __init__(self, seconds_per_batch: float = 0.0) -> None:
        self.batch_sizes: list[int] = []
        self.seconds_per_batch = seconds_per_batch
        self.release = threading.Event()
        self.release.set()

    def pad(self, sequences: list[list[int]], truncated: list[bool]) -> EncodedBatch:
        width = max(len(s) for s in sequences)
        ids = torch.tensor([s + [0] * (width - len(s)) for s in sequences])
        return EncodedBatch(ids, (ids != 0).long(), [len(s) for s in sequences], truncated)

    def run(self, batch: EncodedBatch, options: list[dict]) -> list[int]:
        self.release.wait()
        time.sleep(self.seconds_per_batch)
        self.batch_sizes.append(len(batch.lengths))
        return list(batch.lengths)


def make_engine(runner: RecordingRunner, **batching) -> BatchEngine:
    return BatchEngine(
        model="m", version="1", batching=BatchingConfig(**batching), pad=runner.pad, run=runner.run,
        metrics=ServerMetrics(),
    )


def test_results_come_back_in_order_for_each_request() -> None:
    runner = RecordingRunner()
    engine = make_engine(runner)

    async def run():
        return await asyncio.gather(
            engine.submit([([1, 2, 3], False, {}), ([1], False, {})]),
            engine.submit([([1, 2], False, {})]),
        )

    try:
        first, second = asyncio.run(run())
    finally:
        engine.close()

    assert first == [3, 1]
    assert second == [2]


def pile_up_behind_a_held_batch(engine: BatchEngine, runner: RecordingRunner, ids: list[int], later: int) -> None:
    """Submit one input and hold its batch; submit ``later`` more, then let everything run."""
    runner.release.clear()

    async def run():
        first = asyncio.create_task(engine.submit([(ids, False, {})]))
        await asyncio.sleep(0.05)  # the first input is running (held) before the others arrive
        tasks = [asyncio.create_task(engine.submit([(ids, False, {})])) for _ in range(later)]
        await asyncio.sleep(0.05)
        runner.release.set()
        return await asyncio.gather(first, *tasks)

    try:
        asyncio.run(run())
    finally:
        engine.close()


def test_inputs_arriving_while_busy_are_batched_together() -> None:
    runner = RecordingRunner()
    engine = make_engine(runner, max_batch_size=8, max_queue_delay_ms=0)

    pile_up_behind_a_held_batch(engine, runner, [1, 2], later=10)

    assert runner.batch_sizes == [1, 8, 2]


def test_batch_respects_the_padded_token_budget() -> None:
    runner = RecordingRunner()
    engine = make_engine(runner, max_batch_size=16, max_batch_tokens=40, max_queue_delay_ms=0)

    pile_up_behind_a_held_batch(engine, runner, list(range(1, 11)), later=8)

    assert runner.batch_sizes == [1, 4, 4]


def test_lone_request_at_idle_does_not_wait_for_the_window() -> None:
    runner = RecordingRunner()
    engine = make_engine(runner, max_queue_delay_ms=1000)

    async def run():
        started = time.perf_counter()
        await engine.submit([([1], False, {})])
        return time.perf_counter() - started

    try:
        elapsed = asyncio.run(run())
    finally:
        engine.close()

    # The window is one second; a lone request that waited for it could not finish in half.
    assert elapsed < 0.5
    assert runner.batch_sizes == [1]
