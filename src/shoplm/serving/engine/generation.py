"""The generation engine: a scheduler that decides every step, over one causal LM.

Each step the compute loop asks for is either a prefill of newly admitted sequences (which then
join the running batch) or one decode step for every running sequence. Finished sequences
(EOS, max tokens, stop sequence, client gone) leave at once and free their cache rows.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import torch

from shoplm.config import BatchingConfig
from shoplm.serving.engine.compute import ComputeLoop
from shoplm.serving.engine.decoding import Decoder, TransformersDecoder
from shoplm.serving.engine.lifecycle import QueuedEngine
from shoplm.serving.engine.llama_cpp_runtime import LlamaCppDecoder, LlamaCppModel
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
        loaded: LoadedModel | LlamaCppModel,
        batching: BatchingConfig,
        metrics: ServerMetrics,
        compute: ComputeLoop | None = None,
    ) -> None:
        super().__init__(model=model, version=version, batching=batching, metrics=metrics, compute=compute)
        self.loaded = loaded
        self.decoder = make_decoder(loaded, batching)
        self.eos_ids = self.decoder.eos_ids
        self.max_positions = self.decoder.max_positions
        self._waiting: deque[_Sequence] = deque()
        self._running: list[_Sequence] = []
        self._step_seconds = 0.05
        self._join_compute()

    def generate(self, prompt_ids: list[int], params: SamplingParams) -> AsyncIterator[GenerationEvent]:
        """Queue one sequence now (raising at once when the queue is full) and return its events.

        Leaving the iteration early cancels the sequence and frees its batch slot.
        """
        return self.generate_many(prompt_ids, [params])[0]

    def generate_many(
        self, prompt_ids: list[int], choices: list[SamplingParams]
    ) -> list[AsyncIterator[GenerationEvent]]:
        """Queue one sequence per entry of ``choices``, all or none (a full queue raises), and
        return each one's events."""
        loop = asyncio.get_running_loop()
        sequences = [
            _Sequence(
                prompt_ids=list(prompt_ids),
                sampler=SamplerState(params, make_generator(params.seed, self.decoder.device)),
                loop=loop,
                events=asyncio.Queue(),
            )
            for params in choices
        ]
        with self._lock:
            self._admit(len(self._waiting), len(sequences))
            self._waiting.extend(sequences)
            self._metrics.queue_depth.labels(self.model).set(len(self._waiting))
        self._compute.wake()
        return [self._events(sequence) for sequence in sequences]

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
            self._running = []
            self.decoder.reset()
        with self._lock:
            self._mark_drained_if_idle()

    def _schedule(self) -> list[_Sequence]:
        """Decide this step: the waiting sequences to prefill now (maybe none)."""
        with self._lock:
            joining: list[_Sequence] = []
            can_join = self.decoder.can_join()
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
            logits = self.decoder.prefill([sequence.prompt_ids for sequence in joining])
            rows = joining
        elif self._running:
            # Every running sequence has generated a token: one that ends it (EOS) finishes it.
            logits = self.decoder.decode([sequence.generated[-1] for sequence in self._running])
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
        self._drop_finished()
        self._metrics.running_sequences.labels(self.model).set(len(self._running))

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
        if params.healed_prefix and text.startswith(params.healed_prefix):
            text = text[len(params.healed_prefix) :]  # the prompt already ends with it
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
        self.decoder.keep(keep)


def make_decoder(loaded: LoadedModel | LlamaCppModel, batching: BatchingConfig) -> Decoder:
    """The runtime a model was loaded into: transformers, or llama.cpp for ``engine: llama_cpp``."""
    if isinstance(loaded, LlamaCppModel):
        return LlamaCppDecoder(loaded, batching)
    return TransformersDecoder(loaded)
