"""The KServe v2 serving handler, shared by the REST and gRPC front ends.

It knows each task's tensors, validates named inputs against them, runs the
:class:`InferenceService` and returns named numpy outputs; the front ends only move bytes.

Tensors per task (every task takes ``text``: BYTES ``[-1]``, also accepted as ``[N, 1]``):

=========  ===============================================================================
embed      ``embedding`` FP32 ``[-1, D]`` (the pooled, normalized vector of each text)
classify   ``probabilities`` FP32 ``[-1, C]``, ``label`` BYTES ``[-1]`` (the argmax label),
           ``score`` FP32 ``[-1]`` (the probability of that label)
fill-mask  ``token`` BYTES ``[-1, K]``, ``score`` FP32 ``[-1, K]`` for the first mask of each
           text; K is the request parameter ``top_k`` (default 5, 1..50)
generate   ``text_output`` BYTES ``[-1]``, one completion per prompt; request parameters
           ``max_tokens``, ``temperature``, ``top_p``, ``top_k``, ``seed``, ``stop``,
           ``frequency_penalty``, ``presence_penalty``
=========  ===============================================================================
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from shoplm import __version__
from shoplm.serving.errors import InvalidRequestError, ModelNotFoundError, ModelNotReadyError
from shoplm.serving.kserve import tensors
from shoplm.serving.kserve.protocol import FillMaskParameters, GenerateParameters
from shoplm.serving.registry import ModelHandle, ModelRegistry, ModelState
from shoplm.serving.service import InferenceService, fill_mask_rows, stack

SERVER_NAME = "shoplm"
PLATFORM = "pytorch_transformers"
EXTENSIONS = ("binary_tensor_data", "parameters")
TEXT_INPUT = "text"
FP32 = "FP32"
BYTES = tensors.BYTES


@dataclass(frozen=True)
class TensorSpec:
    """A tensor a model takes or gives; -1 marks a dimension that varies per request."""

    name: str
    datatype: str
    shape: tuple[int, ...]


@dataclass(frozen=True)
class ModelMetadata:
    name: str
    versions: list[str]
    platform: str
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]


@dataclass(frozen=True)
class InputTensor:
    """An input as it arrived: listed ``values`` (JSON data, gRPC contents) or ``raw`` bytes."""

    name: str
    datatype: str
    shape: tuple[int, ...]
    values: Sequence[Any] | None = None
    raw: bytes | None = None

    def to_numpy(self) -> np.ndarray:
        """The decoded tensor; 400 when its data does not match its datatype and shape."""
        if self.raw is not None:
            return tensors.from_binary(self.name, self.datatype, self.shape, self.raw)
        return tensors.from_values(self.name, self.datatype, self.shape, self.values or ())


@dataclass(frozen=True)
class OutputTensor:
    name: str
    datatype: str
    data: np.ndarray

    @property
    def shape(self) -> list[int]:
        return list(self.data.shape)


@dataclass(frozen=True)
class RequestedOutput:
    name: str
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class InferRequest:
    """One inference request, protocol-neutral; ``version`` None means the loaded one."""

    model: str
    inputs: list[InputTensor]
    version: str | None = None
    id: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    outputs: list[RequestedOutput] | None = None


@dataclass(frozen=True)
class InferResponse:
    model: str
    version: str
    id: str | None
    outputs: list[OutputTensor]


def server_metadata() -> dict[str, Any]:
    """Name, version and the protocol extensions this server supports."""
    return {"name": SERVER_NAME, "version": __version__, "extensions": list(EXTENSIONS)}


def check_server_ready(registry: ModelRegistry) -> None:
    """Return when every required model marked ``load_on_start`` serves; else 503 naming the others."""
    waiting = [
        f"{name} ({entry.state.value})"
        for name, entry in registry.entries.items()
        if entry.config.load_on_start and entry.config.required and not _serving(registry, name)
    ]
    if waiting:
        raise ModelNotReadyError(f"server is not ready; models not serving: {', '.join(waiting)}")


def _serving(registry: ModelRegistry, name: str) -> bool:
    # A model being reloaded keeps answering with its previous version, so it still counts.
    entry = registry.entries[name]
    return entry.handle is not None and entry.state in (ModelState.READY, ModelState.LOADING)


def check_model_ready(registry: ModelRegistry, name: str, version: str | None) -> ModelHandle:
    """The handle serving ``name`` (and ``version``); 404 unknown, 503 not ready."""
    return registry.ready(name, version)


def model_metadata(registry: ModelRegistry, name: str, version: str | None) -> ModelMetadata:
    """The tensors of the loaded ``name`` (its output sizes depend on the loaded weights)."""
    handle = registry.ready(name, version)
    inputs, outputs = tensor_specs(handle)
    return ModelMetadata(name, [handle.version], PLATFORM, inputs, outputs)


def tensor_specs(handle: ModelHandle) -> tuple[list[TensorSpec], list[TensorSpec]]:
    """The inputs and outputs of a loaded model, by its task."""
    inputs = [TensorSpec(TEXT_INPUT, BYTES, (-1,))]
    runner = handle.runner
    if handle.task == "generate" or runner is None:
        return inputs, [TensorSpec("text_output", BYTES, (-1,))]
    if handle.task == "embed":
        return inputs, [TensorSpec("embedding", FP32, (-1, runner.embedding_dim))]
    if handle.task == "classify":
        return inputs, [
            TensorSpec("probabilities", FP32, (-1, len(runner.labels))),
            TensorSpec("label", BYTES, (-1,)),
            TensorSpec("score", FP32, (-1,)),
        ]
    return inputs, [TensorSpec("token", BYTES, (-1, -1)), TensorSpec("score", FP32, (-1, -1))]


async def infer(service: InferenceService, request: InferRequest) -> InferResponse:
    """Validate ``request`` against the model's tensors, run it, and return the outputs asked for."""
    handle = service.registry.ready(request.model, request.version)
    input_specs, output_specs = tensor_specs(handle)
    wanted = _requested_outputs(request, output_specs)
    texts = _texts(request, input_specs[0])
    if handle.task == "generate":
        version, outputs = await _generate(service, handle, request, texts)
    else:
        version, outputs = await _encode(service, handle, request, texts)
    by_name = {output.name: output for output in outputs}
    return InferResponse(request.model, version, request.id, [by_name[name] for name in wanted])


def _requested_outputs(request: InferRequest, specs: list[TensorSpec]) -> list[str]:
    known = [spec.name for spec in specs]
    if request.outputs is None:
        return known
    names = []
    for output in request.outputs:
        if output.name not in known:
            raise InvalidRequestError(
                f"unknown output '{output.name}'; model '{request.model}' gives: {', '.join(known)}",
                param="outputs",
            )
        if output.name in names:
            raise InvalidRequestError(f"output '{output.name}' is requested twice", param="outputs")
        if output.parameters.get("classification"):
            raise InvalidRequestError(
                f"output '{output.name}': the classification extension is not supported; "
                "request the 'label' and 'score' outputs of a classify model instead",
                param="outputs",
            )
        names.append(output.name)
    return names


def _texts(request: InferRequest, spec: TensorSpec) -> list[str]:
    for tensor in request.inputs:
        if tensor.name != spec.name:
            raise InvalidRequestError(
                f"unknown input '{tensor.name}'; model '{request.model}' takes one input: "
                f"'{spec.name}' (BYTES, shape [-1])",
                param=tensor.name,
            )
    if not request.inputs:
        raise InvalidRequestError(f"missing input '{spec.name}' (BYTES, shape [-1])", param=spec.name)
    if len(request.inputs) > 1:
        raise InvalidRequestError(f"input '{spec.name}' is given {len(request.inputs)} times", param=spec.name)
    tensor = request.inputs[0]
    if tensor.datatype != BYTES:
        raise InvalidRequestError(
            f"input '{spec.name}' must have datatype BYTES, got {tensor.datatype!r}", param=spec.name
        )
    shape = list(tensor.shape)
    if not (len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)):
        raise InvalidRequestError(
            f"input '{spec.name}' must have shape [N] or [N, 1], got {shape}", param=spec.name
        )
    texts = []
    for index, element in enumerate(tensor.to_numpy().reshape(-1)):
        try:
            texts.append(bytes(element).decode("utf-8"))
        except UnicodeDecodeError as error:
            raise InvalidRequestError(
                f"input '{spec.name}[{index}]' is not valid UTF-8 ({error.reason} at byte {error.start})",
                param=spec.name,
            ) from None
    if not texts:
        raise InvalidRequestError(f"input '{spec.name}' must hold at least one text", param=spec.name)
    return texts


async def _encode(
    service: InferenceService, handle: ModelHandle, request: InferRequest, texts: list[str]
) -> tuple[str, list[OutputTensor]]:
    options: dict[str, Any] | None = None
    if handle.task == "fill-mask":
        top_k = FillMaskParameters.parse(request.parameters).top_k
        vocabulary = len(handle.loaded.tokenizer)
        if top_k > vocabulary:
            raise InvalidRequestError(
                f"parameter 'top_k' is {top_k}; model '{request.model}' has only {vocabulary} tokens",
                param="top_k",
            )
        options = {"top_k": top_k}
    result = await service.run_encoder(
        request.model, handle.task, texts, version=request.version, options=options, param=TEXT_INPUT
    )
    if handle.task == "embed":
        return result.version, [OutputTensor("embedding", FP32, stack(result.outputs))]
    if handle.task == "classify":
        probabilities = stack(result.outputs)
        chosen = probabilities.argmax(axis=1)
        labels = handle.runner.labels if handle.runner is not None else []
        names = [labels[i] if i < len(labels) else f"LABEL_{i}" for i in chosen.tolist()]
        return result.version, [
            OutputTensor("probabilities", FP32, probabilities),
            OutputTensor("label", BYTES, tensors.bytes_array([name.encode("utf-8") for name in names])),
            OutputTensor("score", FP32, probabilities[np.arange(len(chosen)), chosen]),
        ]
    rows = fill_mask_rows(result.outputs)
    tokens = [prediction.token.encode("utf-8") for row in rows for prediction in row]
    scores = np.array([prediction.score for row in rows for prediction in row], dtype=np.float32)
    return result.version, [
        OutputTensor("token", BYTES, tensors.bytes_array(tokens).reshape(len(rows), -1)),
        OutputTensor("score", FP32, scores.reshape(len(rows), -1)),
    ]


async def _generate(
    service: InferenceService, handle: ModelHandle, request: InferRequest, texts: list[str]
) -> tuple[str, list[OutputTensor]]:
    parameters = GenerateParameters.parse(request.parameters)
    limit = handle.config.limits.max_inputs_per_request
    if len(texts) > limit:
        raise InvalidRequestError(
            f"input '{TEXT_INPUT}' holds {len(texts)} prompts; the limit is {limit}", param=TEXT_INPUT
        )
    generations = []
    for index, text in enumerate(texts):
        where = f"{TEXT_INPUT}[{index}]"
        if not text.strip():
            raise InvalidRequestError(f"input '{where}' is empty", param=TEXT_INPUT)
        try:
            generation = service.completion_request(request.model, text, parameters.to_sampling_params())
        except InvalidRequestError as error:
            if error.param != "prompt":
                raise
            raise InvalidRequestError(f"input '{where}': {error.message}", param=TEXT_INPUT) from None
        if request.version is not None and generation.version != request.version:
            raise ModelNotFoundError(
                f"model {request.model!r} has no version {request.version!r} loaded; "
                f"loaded version: {generation.version}",
                param="version",
            )
        generations.append(generation)
    runs = [asyncio.ensure_future(service.complete(generation)) for generation in generations]
    try:
        results = await asyncio.gather(*runs)
    except BaseException:
        # One prompt failed (or the client went away): stop decoding the others.
        for run in runs:
            run.cancel()
        raise
    completions = tensors.bytes_array([text.encode("utf-8") for text, _, _, _ in results])
    return generations[0].version, [OutputTensor("text_output", BYTES, completions)]

