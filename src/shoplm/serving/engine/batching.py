"""Dynamic batching for the encoder tasks (embed, classify, fill-mask).

Inputs queue per model; the compute loop asks this engine for a batch of up to
``max_batch_size`` inputs and ``max_batch_tokens`` padded tokens. An input that finds the model
idle runs at once; while the model is busy, arrivals pile up and become the next batch. Only
when requests arrive close together does the engine wait up to ``max_queue_delay_ms`` to fill
a batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from shoplm.config import BatchingConfig
from shoplm.serving.engine.compute import ComputeLoop
from shoplm.serving.engine.lifecycle import QueuedEngine
from shoplm.serving.metrics import ServerMetrics
from shoplm.textproc import EncodedBatch

RunBatch = Callable[[EncodedBatch, list[dict[str, Any]]], list[Any]]
PadBatch = Callable[[list[list[int]], list[bool]], EncodedBatch]


@dataclass
class _Pending:
    token_ids: list[int]
    truncated: bool
    options: dict[str, Any]
    future: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop
    enqueued_at: float = field(default_factory=time.perf_counter)


class BatchEngine(QueuedEngine):
    """Queues inputs of one model version and runs them in dynamic batches on the compute loop."""

    def __init__(
        self,
        *,
        model: str,
        version: str,
        batching: BatchingConfig,
        pad: PadBatch,
        run: RunBatch,
        metrics: ServerMetrics,
        compute: ComputeLoop | None = None,
    ) -> None:
        super().__init__(model=model, version=version, batching=batching, metrics=metrics, compute=compute)
        self._pad = pad
        self._run = run
        self._queue: deque[_Pending] = deque()
        self._last_arrival = 0.0
        self._under_load = False
        self._batch_seconds = 0.05  # running estimate, for Retry-After
        self._join_compute()

    async def submit(self, inputs: Sequence[tuple[list[int], bool, dict[str, Any]]]) -> list[Any]:
        """Queue ``(token_ids, truncated, options)`` inputs and wait for their results, in order."""
        loop = asyncio.get_running_loop()
        pending = [_Pending(ids, truncated, options, loop.create_future(), loop) for ids, truncated, options in inputs]
        with self._lock:
            self._admit(len(self._queue), len(pending))
            now = time.perf_counter()
            self._under_load = now - self._last_arrival < self.batching.max_queue_delay_ms / 1000
            self._last_arrival = now
            self._queue.extend(pending)
            self._metrics.queue_depth.labels(self.model).set(len(self._queue))
        self._compute.wake()
        try:
            return list(await asyncio.gather(*(p.future for p in pending)))
        finally:
            for item in pending:
                item.future.cancel()  # a no-op when done; frees the slot when the caller gave up

    def _retry_after(self) -> float:
        batches_ahead = len(self._queue) / self.batching.max_batch_size + 1
        return max(1.0, math.ceil(batches_ahead * self._batch_seconds))

    @property
    def queue_depth(self) -> int:
        return len(self._queue)

    def _is_idle(self) -> bool:
        return not self._queue

    def _abort_all(self, error: Exception) -> None:
        while self._queue:
            _resolve(self._queue.popleft(), error=error)

    # --- called by the compute loop ------------------------------------------------------

    def ready_at(self, now: float) -> float | None:
        """When this engine wants its next batch run: None for never, ``now`` or earlier for now."""
        with self._lock:
            while self._queue and self._queue[0].future.done():
                self._queue.popleft()  # cancelled by a client that left
            if not self._queue:
                return None
            wait = self._under_load and self._accepting and self.batching.max_queue_delay_ms > 0
            if not wait or len(self._queue) >= self.batching.max_batch_size:
                return now
            return self._queue[0].enqueued_at + self.batching.max_queue_delay_ms / 1000

    def step(self) -> None:
        """Run one batch of what is queued."""
        with self._lock:
            batch = self._take_fitting()
            self._metrics.queue_depth.labels(self.model).set(len(self._queue))
        if batch:
            self._execute(batch)
        with self._lock:
            self._mark_drained_if_idle()

    def _take_fitting(self) -> list[_Pending]:
        """Take queued inputs while the size and padded-token budgets allow."""
        batch: list[_Pending] = []
        longest = 0
        while self._queue and len(batch) < self.batching.max_batch_size:
            candidate = self._queue[0]
            if candidate.future.done():
                self._queue.popleft()
                continue
            new_longest = max(longest, len(candidate.token_ids))
            if batch and new_longest * (len(batch) + 1) > self.batching.max_batch_tokens:
                break
            batch.append(self._queue.popleft())
            longest = new_longest
        return batch

    def _execute(self, batch: list[_Pending]) -> None:
        started = time.perf_counter()
        labels = (self.model, self.version)
        for item in batch:
            self._metrics.queue_time.labels(*labels).observe(started - item.enqueued_at)
        try:
            encoded = self._pad([item.token_ids for item in batch], [item.truncated for item in batch])
            results = self._run(encoded, [item.options for item in batch])
        except Exception as error:  # noqa: BLE001 - delivered to each waiting request
            for item in batch:
                _resolve(item, error=error)
            return
        elapsed = time.perf_counter() - started
        self._batch_seconds = 0.8 * self._batch_seconds + 0.2 * elapsed
        self._metrics.compute_time.labels(*labels).observe(elapsed)
        self._metrics.batch_size.labels(*labels).observe(len(batch))
        self._metrics.prompt_tokens.labels(*labels).inc(sum(len(item.token_ids) for item in batch))
        for item, result in zip(batch, results, strict=True):
            _resolve(item, result=result)


def _resolve(item: _Pending, *, result: Any = None, error: BaseException | None = None) -> None:
    def deliver() -> None:
        if item.future.done():
            return
        if error is not None:
            item.future.set_exception(error)
        else:
            item.future.set_result(result)

    # A closed event loop means nobody is waiting any more.
    with contextlib.suppress(RuntimeError):
        item.loop.call_soon_threadsafe(deliver)
