"""OpenAI-compatible routes: thin handlers over the inference service."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse

from shoplm.serving.engine.generation import GenerationEvent
from shoplm.serving.errors import InvalidRequestError, ServingError
from shoplm.serving.openai.protocol import (
    ChatCompletionRequest,
    CompletionRequest,
    EmbeddingRequest,
    SamplingFields,
    new_id,
    now,
)
from shoplm.serving.responses import FastJSONResponse
from shoplm.serving.service import GenerationRequest, InferenceService, merge_streams, stack
from shoplm.serving.state import ServiceDep, note_model, require_api_key

router = APIRouter(prefix="/v1", tags=["openai"], dependencies=[Depends(require_api_key)])


@router.get("/models")
async def list_models(service: ServiceDep) -> dict[str, Any]:
    """Models that are loaded now, as OpenAI model objects."""
    data = []
    for name, entry in service.registry.entries.items():
        if entry.handle is not None:
            data.append(
                {
                    "id": name,
                    "object": "model",
                    "created": int(entry.handle.loaded_at),
                    "owned_by": "shoplm",
                    "task": entry.config.task,
                    "version": entry.handle.version,
                }
            )
    return {"object": "list", "data": data}


@router.post("/embeddings", response_model=None)
async def embeddings(body: EmbeddingRequest, request: Request, service: ServiceDep) -> FastJSONResponse:
    """Pooled, normalized sentence embeddings."""
    result = await service.run_encoder(body.model, "embed", body.texts(), param="input")
    note_model(request, body.model, result.version)
    vectors = stack(result.outputs)
    if body.dimensions is not None and body.dimensions != vectors.shape[1]:
        raise InvalidRequestError(
            f"'dimensions' must be {vectors.shape[1]} for model {body.model!r} (no shortening)",
            param="dimensions",
        )
    data = [
        {"object": "embedding", "index": i, "embedding": _encode_vector(vector, body.encoding_format)}
        for i, vector in enumerate(vectors)
    ]
    usage = {"prompt_tokens": result.prompt_tokens, "total_tokens": result.prompt_tokens}
    return FastJSONResponse({"object": "list", "data": data, "model": body.model, "usage": usage})


def _encode_vector(vector: np.ndarray, encoding_format: str) -> np.ndarray | str:
    if encoding_format == "base64":
        return base64.b64encode(vector.astype("<f4").tobytes()).decode("ascii")
    return vector


@router.post("/chat/completions", response_model=None)
async def chat_completions(
    body: ChatCompletionRequest, request: Request, service: ServiceDep
) -> dict[str, Any] | StreamingResponse:
    """Chat with the model's chat template; ``stream: true`` answers server-sent events."""
    messages = []
    for index, message in enumerate(body.messages):
        try:
            messages.append({"role": message.role, "content": message.text()})
        except ValueError as error:
            raise InvalidRequestError(f"'messages[{index}].content': {error}", param="messages") from None
    max_tokens = body.max_completion_tokens or body.max_tokens
    generation = service.chat_request(body.model, messages, body.to_sampling_params(max_tokens))
    note_model(request, body.model, generation.version)
    return await _respond(service, body, generation, chat=True)


@router.post("/completions", response_model=None)
async def completions(
    body: CompletionRequest, request: Request, service: ServiceDep
) -> dict[str, Any] | StreamingResponse:
    """Plain text completion of one prompt."""
    assert isinstance(body.prompt, str)
    generation = service.completion_request(body.model, body.prompt, body.to_sampling_params(body.max_tokens))
    note_model(request, body.model, generation.version)
    return await _respond(service, body, generation, chat=False)


async def _respond(
    service: InferenceService, body: SamplingFields, generation: GenerationRequest, *, chat: bool
) -> dict[str, Any] | StreamingResponse:
    completion_id = new_id("chatcmpl" if chat else "cmpl")
    header = {
        "id": completion_id,
        "object": "chat.completion" if chat else "text_completion",
        "created": now(),
        "model": body.model,
        "system_fingerprint": f"{body.model}-v{generation.version}",
    }
    # Every choice is queued before any answer starts, so a full queue refuses the whole request.
    streams = service.start_choices(generation, body.n)
    prompt_tokens = len(generation.prompt_ids)
    if body.stream:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        events = _sse_events(service, streams, prompt_tokens, header, chat=chat, include_usage=include_usage)
        return StreamingResponse(events, media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
    choices, completion_tokens = [], 0
    for index, (text, finish, tokens) in enumerate(await service.collect_choices(streams)):
        choice: dict[str, Any] = {"index": index, "finish_reason": finish, "logprobs": None}
        if chat:
            choice["message"] = {"role": "assistant", "content": text}
        else:
            choice["text"] = text
        choices.append(choice)
        completion_tokens += tokens
    usage = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
             "total_tokens": prompt_tokens + completion_tokens}
    return {**header, "choices": choices, "usage": usage}


async def _sse_events(
    service: InferenceService, streams: list[AsyncIterator[GenerationEvent]], prompt_tokens: int,
    header: dict[str, Any], *, chat: bool, include_usage: bool,
) -> AsyncIterator[str]:
    header = {**header, "object": "chat.completion.chunk" if chat else "text_completion"}
    completion_tokens = [0] * len(streams)
    try:
        if chat:
            first = [{"index": i, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}
                     for i in range(len(streams))]
            yield _sse({**header, "choices": first})
        async with service.deadline():
            async for index, event in merge_streams(streams):
                completion_tokens[index] = event.completion_tokens
                if not event.text and event.finish_reason is None:
                    continue
                if chat:
                    delta = {"content": event.text} if event.text else {}
                    choice = {"index": index, "delta": delta, "finish_reason": event.finish_reason}
                else:
                    choice = {"index": index, "text": event.text, "finish_reason": event.finish_reason}
                yield _sse({**header, "choices": [choice]})
    except ServingError as error:
        # Headers are gone already: the error travels as an event, as OpenAI's servers do.
        yield _sse({"error": {"message": error.message, "type": error.error_type, "code": error.status_code}})
        return
    if include_usage:
        total = sum(completion_tokens)
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": total, "total_tokens": prompt_tokens + total}
        yield _sse({**header, "choices": [], "usage": usage})
    yield "data: [DONE]\n\n"


def _sse(payload: dict[str, Any]) -> str:
    return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"
