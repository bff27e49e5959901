"""The serving handler: protocol-neutral inference operations shared by every front end.

Front ends (OpenAI REST, KServe v2 REST, KServe v2 gRPC) parse their bodies, call these
methods, and shape the answers; validation of texts and limits happens here, once.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from shoplm.serving.engine.batching import BatchEngine
from shoplm.serving.engine.encoder_runner import MaskPrediction
from shoplm.serving.engine.generation import GenerationEngine, GenerationEvent
from shoplm.serving.engine.sampling import SamplingParams
from shoplm.serving.errors import InvalidRequestError, RequestTimeoutError
from shoplm.serving.registry import ModelHandle, ModelRegistry
from shoplm.textproc import TextTooLongError


@dataclass(frozen=True)
class EncoderResult:
    """Results of an encoder task, one per input, with the version that computed them."""

    model: str
    version: str
    outputs: list[Any]
    prompt_tokens: int


@dataclass(frozen=True)
class GenerationRequest:
    """A validated prompt and its sampling settings, bound to one loaded model version."""

    handle: ModelHandle
    prompt_ids: list[int]
    params: SamplingParams

    @property
    def version(self) -> str:
        return self.handle.version


class InferenceService:
    """Validates inputs against each model's limits and runs them on its engine."""

    def __init__(self, registry: ModelRegistry, request_timeout_s: float) -> None:
        self.registry = registry
        self.request_timeout_s = request_timeout_s

    def handle_for(self, name: str, task: str | tuple[str, ...], version: str | None = None) -> ModelHandle:
        """The ready handle of ``name``; 400 when it serves another task than ``task``."""
        handle = self.registry.ready(name, version)
        tasks = (task,) if isinstance(task, str) else task
        if handle.task not in tasks:
            raise InvalidRequestError(
                f"model {name!r} serves task {handle.task!r}; this endpoint needs {' or '.join(tasks)!r}",
                param="model",
            )
        return handle

    @asynccontextmanager
    async def deadline(self) -> AsyncIterator[None]:
        """Bound a request by the server's request timeout (504 past it)."""
        try:
            async with asyncio.timeout(self.request_timeout_s):
                yield
        except TimeoutError:
            raise RequestTimeoutError(
                f"request exceeded the server's request_timeout_s ({self.request_timeout_s:g} s)"
            ) from None

    async def run_encoder(
        self, name: str, task: str, texts: Sequence[object], *, version: str | None = None,
        options: dict[str, Any] | None = None, param: str = "input",
    ) -> EncoderResult:
        """Run ``texts`` through an embed/classify/fill-mask model."""
        handle = self.handle_for(name, task, version)
        items = self._encode_texts(handle, texts, options or {}, param)
        assert isinstance(handle.engine, BatchEngine)
        async with self.deadline():
            outputs = await handle.engine.submit(items)
        return EncoderResult(name, handle.version, outputs, sum(len(ids) for ids, _, _ in items))

    def _encode_texts(
        self, handle: ModelHandle, texts: Sequence[object], options: dict[str, Any], param: str
    ) -> list[tuple[list[int], bool, dict[str, Any]]]:
        limits = handle.config.limits
        if not texts:
            raise InvalidRequestError(f"'{param}' must hold at least one text", param=param)
        if len(texts) > limits.max_inputs_per_request:
            raise InvalidRequestError(
                f"'{param}' holds {len(texts)} texts; the limit is {limits.max_inputs_per_request}", param=param
            )
        items = []
        for index, text in enumerate(texts):
            where = f"{param}[{index}]" if len(texts) > 1 else param
            if not isinstance(text, str):
                raise InvalidRequestError(f"'{where}' must be a string, got {type(text).__name__}", param=where)
            if not text.strip():
                raise InvalidRequestError(f"'{where}' is empty", param=where)
            try:
                ids, truncated = handle.pipeline.token_ids(text)
            except TextTooLongError as error:
                raise InvalidRequestError(f"'{where}': {error}", param=where) from None
            if handle.task == "fill-mask" and handle.loaded.tokenizer.mask_token_id not in ids:
                mask = handle.loaded.tokenizer.mask_token
                raise InvalidRequestError(f"'{where}' must contain the mask token {mask!r}", param=where)
            items.append((ids, truncated, options))
        return items

    # --- generation -------------------------------------------------------------------

    def chat_request(
        self, name: str, messages: list[dict[str, str]], params: dict[str, Any]
    ) -> GenerationRequest:
        """Apply the model's chat template to ``messages`` and validate the settings."""
        handle = self.handle_for(name, "generate")
        tokenizer = handle.loaded.tokenizer
        if not getattr(tokenizer, "chat_template", None):
            raise InvalidRequestError(
                f"model {name!r} has no chat template; use /v1/completions", param="messages"
            )
        cleaned = [{**message, "content": handle.pipeline.clean(message["content"])} for message in messages]
        encoded: Any = tokenizer.apply_chat_template(cleaned, add_generation_prompt=True, tokenize=True)
        ids = encoded if isinstance(encoded, list) else encoded["input_ids"]
        return self._generation_request(handle, [int(i) for i in ids], params, "messages")

    def completion_request(self, name: str, prompt: str, params: dict[str, Any]) -> GenerationRequest:
        """Tokenize a plain prompt and validate the settings."""
        handle = self.handle_for(name, "generate")
        if not prompt.strip():
            raise InvalidRequestError("'prompt' is empty", param="prompt")
        ids = list(handle.loaded.tokenizer(handle.pipeline.clean(prompt))["input_ids"])
        request = self._generation_request(handle, ids, params, "prompt")
        healed = handle.healer.heal(ids) if handle.healer is not None else None
        if healed is None:
            return request
        # What was taken back comes again as the first generated token: one more, which the answer does not show.
        sampling = replace(request.params, max_new_tokens=request.params.max_new_tokens + 1,
                           allowed_first=healed.allowed_first, healed_prefix=healed.prefix)
        return GenerationRequest(handle, healed.prompt_ids, sampling)

    def _generation_request(
        self, handle: ModelHandle, prompt_ids: list[int], params: dict[str, Any], param: str
    ) -> GenerationRequest:
        limits = handle.config.limits
        if not prompt_ids:
            raise InvalidRequestError(f"'{param}' has no tokens left after preprocessing", param=param)
        if len(prompt_ids) > limits.max_input_tokens:
            raise InvalidRequestError(
                f"'{param}' is {len(prompt_ids)} tokens; the limit is max_input_tokens={limits.max_input_tokens}",
                param=param,
            )
        max_new_tokens = params.pop("max_new_tokens", None) or limits.default_max_new_tokens
        if max_new_tokens > limits.max_new_tokens:
            raise InvalidRequestError(
                f"'max_tokens' is {max_new_tokens}; the limit is {limits.max_new_tokens}", param="max_tokens"
            )
        stop = tuple(params.pop("stop", None) or ())
        if len(stop) > limits.max_stop_sequences:
            raise InvalidRequestError(
                f"'stop' holds {len(stop)} sequences; the limit is {limits.max_stop_sequences}", param="stop"
            )
        sampling = SamplingParams(max_new_tokens=max_new_tokens, stop=stop, **params)
        return GenerationRequest(handle, prompt_ids, sampling)

    def start(self, request: GenerationRequest) -> AsyncIterator[GenerationEvent]:
        """Queue one generation now (a full queue raises here, before any response starts)
        and return its events; the caller bounds the iteration with :meth:`deadline`."""
        return self.start_choices(request, 1)[0]

    def start_choices(self, request: GenerationRequest, n: int) -> list[AsyncIterator[GenerationEvent]]:
        """Queue ``n`` generations of one prompt, all or none, and return each one's events.

        A seeded request's choice ``i`` samples with seed + i: the choices differ, and the same
        request gives the same choices again.
        """
        engine = request.handle.engine
        assert isinstance(engine, GenerationEngine)
        seed = request.params.seed
        choices = [request.params if seed is None or i == 0 else replace(request.params, seed=seed + i)
                   for i in range(n)]
        return engine.generate_many(request.prompt_ids, choices)

    async def complete(self, request: GenerationRequest) -> tuple[str, str, int, int]:
        """Run one generation to the end: (text, finish_reason, prompt_tokens, completion_tokens)."""
        [(text, finish, completion_tokens)] = await self.collect_choices([self.start(request)])
        return text, finish, len(request.prompt_ids), completion_tokens

    async def collect_choices(
        self, streams: list[AsyncIterator[GenerationEvent]]
    ) -> list[tuple[str, str, int]]:
        """Run started generations to the end: (text, finish_reason, completion_tokens) of each."""
        parts: list[list[str]] = [[] for _ in streams]
        finishes, tokens = ["stop"] * len(streams), [0] * len(streams)
        async with self.deadline():
            async for index, event in merge_streams(streams):
                parts[index].append(event.text)
                finishes[index] = event.finish_reason or finishes[index]
                tokens[index] = event.completion_tokens
        return [("".join(texts), finish, count) for texts, finish, count in zip(parts, finishes, tokens, strict=True)]


async def merge_streams(
    streams: list[AsyncIterator[GenerationEvent]],
) -> AsyncIterator[tuple[int, GenerationEvent]]:
    """The events of several generations as they come, each with its stream's index.

    An error in one stream ends the merge with that error; leaving the merge early (or an error)
    closes every stream, which cancels the sequences still running.
    """
    if len(streams) == 1:  # the common case, without tasks
        try:
            async for event in streams[0]:
                yield 0, event
        finally:
            await _close(streams[0])
        return
    queue: asyncio.Queue[tuple[int, GenerationEvent | BaseException | None]] = asyncio.Queue()

    async def pump(index: int, stream: AsyncIterator[GenerationEvent]) -> None:
        try:
            async for event in stream:
                await queue.put((index, event))
        except Exception as error:  # noqa: BLE001 - handed to the consumer, which raises it
            await queue.put((index, error))
        await queue.put((index, None))

    tasks = [asyncio.ensure_future(pump(index, stream)) for index, stream in enumerate(streams)]
    try:
        running = len(tasks)
        while running:
            index, item = await queue.get()
            if item is None:
                running -= 1
            elif isinstance(item, BaseException):
                raise item
            else:
                yield index, item
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for stream in streams:
            await _close(stream)


async def _close(stream: AsyncIterator[GenerationEvent]) -> None:
    close = getattr(stream, "aclose", None)
    if close is not None:
        await close()


def fill_mask_rows(outputs: list[list[list[MaskPrediction]]]) -> list[list[MaskPrediction]]:
    """The predictions of the first mask of each input (the common single-mask case)."""
    return [per_mask[0] if per_mask else [] for per_mask in outputs]


def stack(outputs: list[np.ndarray]) -> np.ndarray:
    """Rows of an encoder result as one float32 matrix."""
    return np.stack(outputs).astype(np.float32)
