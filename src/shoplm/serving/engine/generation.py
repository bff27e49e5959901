"""The generation engine: a scheduler that decides every step, over one causal LM.

Each step the compute loop asks for is either a prefill of newly admitted sequences (which then
join the running batch) or one decode step for every running sequence. Finished sequences
(EOS, max tokens, stop sequence, client gone) leave at once and free their cache rows.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import math
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import cast

import torch
from transformers import DynamicCache

from shoplm.config import BatchingConfig
from shoplm.serving.engine import kv_cache
from shoplm.serving.engine.compute import ComputeLoop
from shoplm.serving.engine.lifecycle import QueuedEngine
from shoplm.serving.engine.sampling import SamplerState, SamplingParams, choose_tokens, make_generator
from shoplm.serving.loading import LoadedModel
from shoplm.serving.metrics import ServerMetrics

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class GenerationEvent:
    """New output of one sequence since its previous event."""

    text: str
    token_ids: list[int]
    finish_reason: str | None
    prompt_tokens: int
    completion_tokens: int


@dataclass
class _Sequence:
    prompt_ids: list[int]
    sampler: SamplerState
    loop: asyncio.AbstractEventLoop
    events: asyncio.Queue[GenerationEvent | BaseException]
    enqueued_at: float = field(default_factory=time.perf_counter)
    generated: list[int] = field(default_factory=list)
    emitted_chars: int = 0
    emitted_tokens: int = 0
    last_token_at: float = 0.0
    cancelled: bool = False
    finish_reason: str | None = None

    def send(self, event: GenerationEvent | BaseException) -> None:
        try:
            self.loop.call_soon_threadsafe(self.events.put_nowait, event)
        except RuntimeError:  # the event loop is gone: the client cannot be told any more
            self.cancelled = True


class GenerationEngine(QueuedEngine):
    """Runs many generation requests of one model version as one batch, step by step."""

    def __init__(
        self,
        *,
        model: str,
        version: str,
        loaded: LoadedModel,
        batching: BatchingConfig,
        metrics: ServerMetrics,
        compute: ComputeLoop | None = None,
    ) -> None:
        super().__init__(model=model, version=version, batching=batching, metrics=metrics, compute=compute)
        self.loaded = loaded
        tokenizer = loaded.tokenizer
        eos = loaded.model.generation_config.eos_token_id
        eos_ids = eos if isinstance(eos, list) else [eos]
        self.eos_ids = {int(i) for i in [*eos_ids, tokenizer.eos_token_id] if i is not None}
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(self.eos_ids, default=0)
        self.max_positions = int(getattr(loaded.model.config, "max_position_embeddings", 0) or 1 << 30)
        forward = inspect.signature(loaded.model.forward).parameters
        self._logits_kwargs = {"logits_to_keep": 1} if "logits_to_keep" in forward else {}
        # transformers 5 renamed past_key_values to cache; older checkpoints' code keeps the old name.
        self._cache_argument = "cache" if "cache" in forward else "past_key_values"
        self._waiting: deque[_Sequence] = deque()
        self._running: list[_Sequence] = []
        self._cache: DynamicCache | None = None
        self._mask: torch.Tensor | None = None
        self._last_tokens = torch.empty(0, dtype=torch.long)
        self._step_seconds = 0.05
        self._join_compute()

    def generate(self, prompt_ids: list[int], params: SamplingParams) -> AsyncIterator[GenerationEvent]:
        """Queue one sequence now (raising at once when the queue is full) and return its events.

        Leaving the iteration early cancels the sequence and frees its batch slot.
        """
        sequence = _Sequence(
            prompt_ids=list(prompt_ids),
            sampler=SamplerState(params, make_generator(params.seed, self.loaded.device)),
            loop=asyncio.get_running_loop(),
            events=asyncio.Queue(),
        )
        with self._lock:
            self._admit(len(self._waiting), 1)
            self._waiting.append(sequence)
            self._metrics.queue_depth.labels(self.model).set(len(self._waiting))
        self._compute.wake()
        return self._events(sequence)

    @staticmethod
    async def _events(sequence: _Sequence) -> AsyncIterator[GenerationEvent]:
        try:
            while True:
                event = await sequence.events.get()
                if isinstance(event, BaseException):
                    raise event
                yield event
                if event.finish_reason is not None:
                    return
        finally:
            sequence.cancelled = True

    def _retry_after(self) -> float:
        waves = len(self._waiting) / self.batching.max_num_seqs + 1
        return max(1.0, math.ceil(waves * self._step_seconds * 64))

    @property
    def queue_depth(self) -> int:
        return len(self._waiting)

    def _is_idle(self) -> bool:
        return not self._waiting and not self._running

    def _abort_all(self, error: Exception) -> None:
        for sequence in [*self._waiting, *self._running]:
            sequence.send(error)
            sequence.cancelled = True

    # --- called by the compute loop ------------------------------------------------------

    def ready_at(self, now: float) -> float | None:
        """Now while any sequence waits or runs, else None."""
        return now if self._waiting or self._running else None

    def step(self) -> None:
        """One scheduler decision and one forward pass (a prefill or a decode step)."""
        joining = self._schedule()
        try:
            with torch.inference_mode():
                self._step(joining)
        except Exception as error:  # every affected request is told below
            logger.exception("generation step failed", extra={"model": self.model})
            for sequence in [*self._running, *joining]:
                sequence.send(error)
            self._running, self._cache, self._mask = [], None, None
        with self._lock:
            self._mark_drained_if_idle()

    def _schedule(self) -> list[_Sequence]:
        """Decide this step: the waiting sequences to prefill now (maybe none)."""
        with self._lock:
            joining: list[_Sequence] = []
            can_join = self._cache is None or kv_cache.supports_row_surgery(self._cache)
            longest = 0
            while self._waiting and can_join and len(self._running) + len(joining) < self.batching.max_num_seqs:
                candidate = self._waiting[0]
                if candidate.cancelled:
                    self._waiting.popleft()
                    continue
                new_longest = max(longest, len(candidate.prompt_ids))
                if joining and new_longest * (len(joining) + 1) > self.batching.max_batch_tokens:
                    break
                joining.append(self._waiting.popleft())
                longest = new_longest
            self._metrics.queue_depth.labels(self.model).set(len(self._waiting))
            return joining

    def _step(self, joining: list[_Sequence]) -> None:
        started = time.perf_counter()
        labels = (self.model, self.version)
        if joining:
            for sequence in joining:
                self._metrics.queue_time.labels(*labels).observe(started - sequence.enqueued_at)
                self._metrics.prompt_tokens.labels(*labels).inc(len(sequence.prompt_ids))
            logits = self._prefill(joining)
            rows = joining
        elif self._running:
            logits = self._decode()
            rows = self._running
        else:
            return
        tokens = choose_tokens(logits, [sequence.sampler for sequence in rows])
        elapsed = time.perf_counter() - started
        self._step_seconds = 0.9 * self._step_seconds + 0.1 * elapsed
        self._metrics.compute_time.labels(*labels).observe(elapsed)
        self._metrics.batch_size.labels(*labels).observe(len(rows))
        now = time.perf_counter()
        for sequence, token in zip(rows, tokens, strict=True):
            self._advance(sequence, token, now)
        if joining:
            self._running.extend(joining)
        self._last_tokens = torch.tensor(
            [s.generated[-1] if s.generated else self.pad_id for s in self._running],
            device=self.loaded.device,
        )
        self._drop_finished()
        self._metrics.running_sequences.labels(self.model).set(len(self._running))

    def _prefill(self, joining: list[_Sequence]) -> torch.Tensor:
        device = self.loaded.device
        width = max(len(s.prompt_ids) for s in joining)
        input_ids = torch.full((len(joining), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(joining), width), dtype=torch.long)
        for row, sequence in enumerate(joining):
            length = len(sequence.prompt_ids)
            input_ids[row, width - length :] = torch.tensor(sequence.prompt_ids)
            mask[row, width - length :] = 1
        input_ids, mask = input_ids.to(device), mask.to(device)
        cache = DynamicCache(config=self.loaded.model.config)
        output = self.loaded.model(
            input_ids=input_ids,
            attention_mask=mask,
            position_ids=(mask.cumsum(-1) - 1).clamp(min=0),
            use_cache=True,
            **{self._cache_argument: cache},
            **self._logits_kwargs,
        )
        cache = _returned_cache(output)
        if self._cache is None or self._mask is None:
            self._cache, self._mask = cache, mask
        else:
            self._cache, self._mask = kv_cache.merge(self._cache, self._mask, cache, mask)
        return output.logits[:, -1, :]

    def _decode(self) -> torch.Tensor:
        assert self._mask is not None and self._cache is not None
        ones = torch.ones((self._mask.shape[0], 1), dtype=self._mask.dtype, device=self._mask.device)
        self._mask = torch.cat([self._mask, ones], dim=1)
        output = self.loaded.model(
            input_ids=self._last_tokens.unsqueeze(1),
            attention_mask=self._mask,
            position_ids=self._mask.sum(dim=-1, keepdim=True) - 1,
            use_cache=True,
            **{self._cache_argument: self._cache},
            **self._logits_kwargs,
        )
        self._cache = _returned_cache(output)
        return output.logits[:, -1, :]

    def _advance(self, sequence: _Sequence, token: int, now: float) -> None:
        """Record ``token`` for ``sequence``, decide whether it is finished, send its event."""
        if sequence.cancelled:
            sequence.finish_reason = "abort"
            return
        labels = (self.model, self.version)
        if sequence.last_token_at:
            self._metrics.inter_token_latency.labels(*labels).observe(now - sequence.last_token_at)
        else:
            self._metrics.time_to_first_token.labels(*labels).observe(now - sequence.enqueued_at)
        sequence.last_token_at = now
        params = sequence.sampler.params
        is_eos = token in self.eos_ids and not params.ignore_eos
        if not is_eos:
            sequence.generated.append(token)
            sequence.sampler.token_counts[token] += 1
            self._metrics.generation_tokens.labels(*labels).inc()
        total = len(sequence.prompt_ids) + len(sequence.generated)
        if is_eos:
            sequence.finish_reason = "stop"
        elif len(sequence.generated) >= params.max_new_tokens or total >= self.max_positions:
            sequence.finish_reason = "length"
        text = str(self.loaded.tokenizer.decode(sequence.generated, skip_special_tokens=True))
        end = len(text)
        for stop in params.stop:
            found = text.find(stop, max(0, sequence.emitted_chars - len(stop)))
            if found != -1 and found < end:
                end, sequence.finish_reason = found, "stop"
        if sequence.finish_reason is None:
            end = self._safe_end(text, params.stop)
        delta = text[sequence.emitted_chars : max(end, sequence.emitted_chars)]
        new_tokens = sequence.generated[sequence.emitted_tokens :]
        if delta or sequence.finish_reason is not None:
            sequence.emitted_chars += len(delta)
            sequence.emitted_tokens = len(sequence.generated)
            event = GenerationEvent(
                delta, new_tokens, sequence.finish_reason, len(sequence.prompt_ids), len(sequence.generated)
            )
            sequence.send(event)

    @staticmethod
    def _safe_end(text: str, stops: tuple[str, ...]) -> int:
        """Hold back a half-decoded character and any tail that may grow into a stop sequence."""
        end = len(text)
        while end > 0 and text[end - 1] == "\ufffd":
            end -= 1
        for stop in stops:
            for length in range(min(len(stop) - 1, end), 0, -1):
                if text[end - length : end] == stop[:length]:
                    end -= length
                    break
        return end

    def _drop_finished(self) -> None:
        keep = [row for row, s in enumerate(self._running) if s.finish_reason is None and not s.cancelled]
        if len(keep) == len(self._running):
            return
        self._running = [self._running[row] for row in keep]
        if not keep:
            self._cache, self._mask = None, None
            return
        assert self._cache is not None and self._mask is not None
        self._mask = kv_cache.keep_rows(self._cache, self._mask, keep)
        self._last_tokens = self._last_tokens.index_select(0, torch.tensor(keep, device=self._last_tokens.device))


def _returned_cache(output: object) -> DynamicCache:
    cache = getattr(output, "cache", None)
    if cache is None:
        cache = getattr(output, "past_key_values", None)
    return cast(DynamicCache, cache)
