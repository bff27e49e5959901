"""The compute thread: the one thread of the process that runs model forward passes.

Why one: PyTorch's CPU kernels run OpenMP parallel regions, and every thread that starts them
keeps a team of worker threads. With two such threads alive on a small machine, their teams
fight for the cores and each forward pass takes about twice as long. So every engine (every
model) hands its work to this loop, which steps the engines in turn, and warm-ups run here too.

An engine is anything with ``ready_at(now)`` (None: no work; a time: when it wants a step) and
``step()`` (one batch or one decode step).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, Protocol, TypeVar

logger = logging.getLogger(__name__)

T = TypeVar("T")


class Steppable(Protocol):
    """What the compute loop needs of an engine."""

    def ready_at(self, now: float) -> float | None: ...

    def step(self) -> None: ...


class ComputeLoop:
    """Runs the steps of all registered engines, and one-off calls, on a single thread."""

    def __init__(self, name: str = "compute") -> None:
        self._condition = threading.Condition()
        self._engines: list[Steppable] = []
        self._calls: deque[tuple[Callable[[], Any], Future[Any]]] = deque()
        self._stopped = False
        self._turn = 0
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def add(self, engine: Steppable) -> None:
        with self._condition:
            self._engines.append(engine)
            self._condition.notify()

    def remove(self, engine: Steppable) -> None:
        with self._condition:
            if engine in self._engines:
                self._engines.remove(engine)

    def wake(self) -> None:
        """Tell the loop that an engine may have work."""
        with self._condition:
            self._condition.notify()

    def call(self, function: Callable[[], T]) -> T:
        """Run ``function`` on the compute thread between steps and return its result."""
        if threading.current_thread() is self._thread:
            return function()
        future: Future[T] = Future()
        with self._condition:
            if self._stopped:
                raise RuntimeError("the compute loop is stopped")
            self._calls.append((function, future))
            self._condition.notify()
        return future.result()

    def stop(self) -> None:
        with self._condition:
            self._stopped = True
            self._condition.notify()
        self._thread.join()

    def _run(self) -> None:
        while self._run_once():
            pass

    def _run_once(self) -> bool:
        """One round: pending calls, then one step of each due engine; False once stopped.

        A function of its own so that the references it holds (engines, calls and what their
        closures captured) are dropped when it returns: a loop variable would keep an unloaded
        model alive until the next round.
        """
        with self._condition:
            calls, ready = self._wait_for_work()
        if calls is None:
            return False
        for function, future in calls:
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(function())
                except BaseException as error:  # noqa: BLE001 - handed to the caller
                    future.set_exception(error)
        for engine in ready:
            try:
                engine.step()
            except Exception:  # an engine tells its own requests; the loop must go on
                logger.exception("engine step failed")
        return True

    def _wait_for_work(self) -> tuple[list[tuple[Callable[[], Any], Future[Any]]] | None, list[Steppable]]:
        """Under the lock: the pending calls and the engines due now; (None, []) to stop."""
        while True:
            now = time.perf_counter()
            due, next_time = [], None
            count = len(self._engines)
            for offset in range(count):  # rotate the start so no model always goes first
                engine = self._engines[(self._turn + offset) % count]
                at = engine.ready_at(now)
                if at is None:
                    continue
                if at <= now:
                    due.append(engine)
                elif next_time is None or at < next_time:
                    next_time = at
            self._turn += 1
            if self._calls or due:
                calls = list(self._calls)
                self._calls.clear()
                return calls, due
            if self._stopped:
                return None, []
            self._condition.wait(None if next_time is None else next_time - now)
