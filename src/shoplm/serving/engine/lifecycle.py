"""What both engines share: bounded admission, draining on close, membership of the compute loop."""

from __future__ import annotations

import threading

from shoplm.config import BatchingConfig
from shoplm.serving.engine.compute import ComputeLoop
from shoplm.serving.errors import ModelNotReadyError, ServerBusyError
from shoplm.serving.metrics import ServerMetrics


class QueuedEngine:
    """Base of the engines: a queue guarded by ``_lock``, stepped by a compute loop.

    Subclasses call :meth:`_join_compute` at the end of their constructor and implement
    ``_is_idle``, ``_abort_all``, ``_retry_after``, ``ready_at`` and ``step``.
    """

    def __init__(
        self, *, model: str, version: str, batching: BatchingConfig, metrics: ServerMetrics,
        compute: ComputeLoop | None,
    ) -> None:
        self.model = model
        self.version = version
        self.batching = batching
        self._metrics = metrics
        self._lock = threading.Lock()
        self._accepting = True
        self._drained = threading.Event()
        # Standalone use (tests, benchmarks) gets a private loop; the server shares one.
        self._owns_compute = compute is None
        self._compute = compute or ComputeLoop(f"compute-{model}")

    def _join_compute(self) -> None:
        self._compute.add(self)

    def _admit(self, queued: int, adding: int) -> None:
        """Under ``_lock``: refuse when shutting down or when ``adding`` would overfill the queue."""
        if not self._accepting:
            raise ModelNotReadyError(f"model {self.model!r} version {self.version} is shutting down")
        if queued + adding > self.batching.max_queue_size:
            raise ServerBusyError(
                f"model {self.model!r} queue is full (max_queue_size={self.batching.max_queue_size}); retry later",
                retry_after_s=self._retry_after(),
            )

    def close(self, drain: bool = True) -> None:
        """Stop accepting; with ``drain`` finish what is queued and running, else abort it."""
        with self._lock:
            self._accepting = False
            if not drain:
                self._abort_all(ModelNotReadyError(f"model {self.model!r} was unloaded"))
            self._mark_drained_if_idle()
        self._compute.wake()
        self._drained.wait()
        self._compute.remove(self)
        if self._owns_compute:
            self._compute.stop()

    def _mark_drained_if_idle(self) -> None:
        """Under ``_lock``: once closed and idle, let :meth:`close` return."""
        if not self._accepting and self._is_idle():
            self._drained.set()

    def ready_at(self, now: float) -> float | None:
        raise NotImplementedError

    def step(self) -> None:
        raise NotImplementedError

    def _is_idle(self) -> bool:
        raise NotImplementedError

    def _abort_all(self, error: Exception) -> None:
        raise NotImplementedError

    def _retry_after(self) -> float:
        raise NotImplementedError
