"""Dynamic batching for the encoder tasks (embed, classify, fill-mask).

Inputs queue per model; one worker thread forms batches of up to ``max_batch_size`` inputs and
``max_batch_tokens`` padded tokens. An input that finds the model idle runs at once; while the
model is busy, arrivals pile up and become the next batch. Only when requests are arriving
close together does the worker wait up to ``max_queue_delay_ms`` to fill a batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from shoplm.config import BatchingConfig
from shoplm.serving.errors import ModelNotReadyError, ServerBusyError
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


class BatchEngine:
    """Queues inputs of one model version and runs them in dynamic batches on a worker thread."""

    def __init__(
        self,
        *,
        model: str,
        version: str,
        batching: BatchingConfig,
        pad: PadBatch,
        run: RunBatch,
        metrics: ServerMetrics,
    ) -> None:
        self.model = model
        self.version = version
        self.batching = batching
        self._pad = pad
        self._run = run
        self._metrics = metrics
        self._queue: deque[_Pending] = deque()
        self._condition = threading.Condition()
        self._accepting = True
        self._stopped = False
        self._last_arrival = 0.0
        self._under_load = False
        self._batch_seconds = 0.05  # running estimate, for Retry-After
        self._thread = threading.Thread(target=self._loop, name=f"batch-{model}", daemon=True)
        self._thread.start()

    async def submit(self, inputs: Sequence[tuple[list[int], bool, dict[str, Any]]]) -> list[Any]:
        """Queue ``(token_ids, truncated, options)`` inputs and wait for their results, in order."""
        loop = asyncio.get_running_loop()
        pending = [_Pending(ids, truncated, options, loop.create_future(), loop) for ids, truncated, options in inputs]
        with self._condition:
            if not self._accepting:
                raise ModelNotReadyError(f"model {self.model!r} version {self.version} is shutting down")
            if len(self._queue) + len(pending) > self.batching.max_queue_size:
                raise ServerBusyError(
                    f"model {self.model!r} queue is full "
                    f"(max_queue_size={self.batching.max_queue_size}); retry later",
                    retry_after_s=self._retry_after(),
                )
            now = time.perf_counter()
            self._under_load = now - self._last_arrival < self.batching.max_queue_delay_ms / 1000
            self._last_arrival = now
            self._queue.extend(pending)
            self._metrics.queue_depth.labels(self.model).set(len(self._queue))
            self._condition.notify()
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

    def close(self, drain: bool = True) -> None:
        """Stop accepting; with ``drain`` finish the queue first, otherwise fail what waits."""
        with self._condition:
            self._accepting = False
            if not drain:
                while self._queue:
                    item = self._queue.popleft()
                    _resolve(item, error=ModelNotReadyError(f"model {self.model!r} was unloaded"))
            self._stopped = True
            self._condition.notify_all()
        self._thread.join()

    def _loop(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            self._execute(batch)

    def _next_batch(self) -> list[_Pending] | None:
        with self._condition:
            while not self._queue:
                if self._stopped:
                    return None
                self._condition.wait()
            batch = self._take_fitting([])
            if self._under_load and self.batching.max_queue_delay_ms > 0:
                deadline = batch[0].enqueued_at + self.batching.max_queue_delay_ms / 1000
                while len(batch) < self.batching.max_batch_size and not self._stopped:
                    remaining = deadline - time.perf_counter()
                    if remaining <= 0 or not self._condition.wait(remaining):
                        break
                    before = len(batch)
                    batch = self._take_fitting(batch)
                    if len(batch) == before and self._queue:
                        break  # the next input does not fit the token budget
            self._metrics.queue_depth.labels(self.model).set(len(self._queue))
            return batch

    def _take_fitting(self, batch: list[_Pending]) -> list[_Pending]:
        """Move queued inputs into ``batch`` while size and padded-token budgets allow."""
        longest = max((len(item.token_ids) for item in batch), default=0)
        while self._queue and len(batch) < self.batching.max_batch_size:
            candidate = self._queue[0]
            if candidate.future.done():  # cancelled by a client that left
                self._queue.popleft()
                continue
            new_longest = max(longest, len(candidate.token_ids))
            if batch and new_longest * (len(batch) + 1) > self.batching.max_batch_tokens:
                break
            batch.append(self._queue.popleft())
            longest = new_longest
        return batch

    def _execute(self, batch: list[_Pending]) -> None:
        batch = [item for item in batch if not item.future.done()]
        if not batch:
            return
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
