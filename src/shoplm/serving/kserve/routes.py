"""KServe v2 (Open Inference Protocol) REST routes: thin handlers over the shared handler.

Inference bodies are JSON, or a JSON header of ``Inference-Header-Content-Length`` bytes
followed by the raw tensors of the inputs that declare ``parameters.binary_data_size`` (the
binary tensor data extension, which ``tritonclient.http`` uses by default). Outputs come
back in the binary section when the output asks for ``binary_data`` or the request for
``binary_data_output``. Health routes are public; the others need an inference API key.
"""

from __future__ import annotations

import json
import zlib
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

from shoplm.serving.errors import InvalidRequestError, PayloadTooLargeError
from shoplm.serving.kserve import handler, tensors
from shoplm.serving.kserve.protocol import (
    InferenceRequest,
    InferenceResponse,
    ModelMetadataResponse,
    ResponseOutput,
    ServerMetadataResponse,
    TensorMetadata,
)
from shoplm.serving.responses import FastJSONResponse
from shoplm.serving.service import InferenceService
from shoplm.serving.state import ServiceDep, StateDep, note_model, require_api_key

router = APIRouter(prefix="/v2", tags=["kserve-v2"])
guarded = [Depends(require_api_key)]

HEADER_LENGTH = "Inference-Header-Content-Length"
BINARY_CONTENT_TYPE = "application/octet-stream"


def _inlined_schema(model: type[BaseModel]) -> dict[str, Any]:
    """``model``'s JSON schema with its ``$defs`` written in place, to embed in a route's OpenAPI entry."""
    schema = model.model_json_schema()
    definitions = schema.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                return inline(definitions[node["$ref"].rsplit("/", 1)[-1]])
            return {key: inline(value) for key, value in node.items()}
        if isinstance(node, list):
            return [inline(value) for value in node]
        return node

    return inline(schema)


# The infer routes read the raw body (JSON, or a JSON header followed by binary tensors), so FastAPI
# cannot derive their OpenAPI entry; it is declared here for /docs and API tooling.
INFER_OPENAPI: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": _inlined_schema(InferenceRequest)},
            BINARY_CONTENT_TYPE: {
                "schema": {"type": "string", "format": "binary"},
                "description": f"A JSON header of `{HEADER_LENGTH}` bytes, then the binary tensor data",
            },
        },
    },
    "responses": {"200": {"content": {"application/json": {"schema": _inlined_schema(InferenceResponse)}}}},
}


@router.get("", dependencies=guarded, response_model=ServerMetadataResponse)
async def server_metadata() -> dict[str, Any]:
    """Server name, version and supported protocol extensions."""
    return handler.server_metadata()


@router.get("/health/live")
async def server_live() -> dict[str, bool]:
    """200 while the process answers (public)."""
    return {"live": True}


@router.get("/health/ready")
async def server_ready(service: ServiceDep) -> dict[str, bool]:
    """200 when every model loaded at start serves, else 503 naming those that do not (public)."""
    handler.check_server_ready(service.registry)
    return {"ready": True}


@router.get("/models/{model_name}", dependencies=guarded, response_model=ModelMetadataResponse)
async def model_metadata(model_name: str, request: Request, service: ServiceDep) -> ModelMetadataResponse:
    """The loaded version of a model and its tensors."""
    return _metadata(request, service, model_name, None)


@router.get(
    "/models/{model_name}/versions/{model_version}", dependencies=guarded, response_model=ModelMetadataResponse
)
async def model_version_metadata(
    model_name: str, model_version: str, request: Request, service: ServiceDep
) -> ModelMetadataResponse:
    """The tensors of one version of a model (404 unless that version is loaded)."""
    return _metadata(request, service, model_name, model_version)


def _metadata(request: Request, service: InferenceService, name: str, version: str | None) -> ModelMetadataResponse:
    metadata = handler.model_metadata(service.registry, name, version)
    note_model(request, name, metadata.versions[0])
    return ModelMetadataResponse(
        name=metadata.name,
        versions=metadata.versions,
        platform=metadata.platform,
        inputs=[TensorMetadata(name=t.name, datatype=t.datatype, shape=list(t.shape)) for t in metadata.inputs],
        outputs=[TensorMetadata(name=t.name, datatype=t.datatype, shape=list(t.shape)) for t in metadata.outputs],
    )


@router.get("/models/{model_name}/ready")
async def model_ready(model_name: str, request: Request, service: ServiceDep) -> dict[str, Any]:
    """200 when the model serves; 404 unknown, 503 loading, unloaded or failed (public)."""
    return _ready(request, service, model_name, None)


@router.get("/models/{model_name}/versions/{model_version}/ready")
async def model_version_ready(
    model_name: str, model_version: str, request: Request, service: ServiceDep
) -> dict[str, Any]:
    """200 when this version of the model serves (public)."""
    return _ready(request, service, model_name, model_version)


def _ready(request: Request, service: InferenceService, name: str, version: str | None) -> dict[str, Any]:
    handle = handler.check_model_ready(service.registry, name, version)
    note_model(request, name, handle.version)
    return {"name": name, "version": handle.version, "ready": True}


@router.post("/models/{model_name}/infer", dependencies=guarded, response_model=None, openapi_extra=INFER_OPENAPI)
async def infer(model_name: str, request: Request, state: StateDep) -> Response:
    """Run the model on named input tensors (JSON or binary tensor data)."""
    return await _infer(request, state.service, state.config.server.max_body_bytes, model_name, None)


@router.post(
    "/models/{model_name}/versions/{model_version}/infer",
    dependencies=guarded,
    response_model=None,
    openapi_extra=INFER_OPENAPI,
)
async def infer_version(model_name: str, model_version: str, request: Request, state: StateDep) -> Response:
    """Run one version of the model (404 unless that version is loaded)."""
    return await _infer(request, state.service, state.config.server.max_body_bytes, model_name, model_version)


async def _infer(
    request: Request, service: InferenceService, max_body_bytes: int, name: str, version: str | None
) -> Response:
    body = _decoded_body(request, await request.body(), max_body_bytes)
    header, binary = _split_body(request, body)
    try:
        parsed = InferenceRequest.model_validate_json(header)
    except ValidationError as error:
        raise RequestValidationError(error.errors()) from None
    binary_outputs = _binary_outputs(parsed)
    result = await handler.infer(
        service,
        handler.InferRequest(
            model=name,
            version=version,
            id=parsed.id,
            inputs=_inputs(parsed, binary),
            parameters=parsed.parameters,
            outputs=None
            if parsed.outputs is None
            else [handler.RequestedOutput(output.name, output.parameters) for output in parsed.outputs],
        ),
    )
    note_model(request, name, result.version)
    return _response(result, binary_outputs)


def _decoded_body(request: Request, body: bytes, max_body_bytes: int) -> bytes:
    """The body, inflated when ``tritonclient`` compressed it (``request_compression_algorithm``)."""
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding == "identity":
        return body
    if encoding not in ("gzip", "deflate"):
        raise InvalidRequestError(f"Content-Encoding {encoding!r} is not supported; use gzip, deflate or none")
    inflater = zlib.decompressobj(wbits=31 if encoding == "gzip" else 15)
    try:
        inflated = inflater.decompress(body, max_body_bytes + 1)
    except zlib.error as error:
        raise InvalidRequestError(f"body is not valid {encoding} data: {error}") from None
    if len(inflated) > max_body_bytes or inflater.unconsumed_tail:
        raise PayloadTooLargeError(f"decompressed request body exceeds max_body_bytes={max_body_bytes}")
    if not inflater.eof:
        raise InvalidRequestError(f"body is truncated {encoding} data")
    return inflated


def _split_body(request: Request, body: bytes) -> tuple[bytes, bytes]:
    """The JSON header and the binary section after it."""
    declared = request.headers.get(HEADER_LENGTH)
    if declared is None:
        return body, b""
    try:
        length = int(declared)
    except ValueError:
        length = -1
    if length < 0:
        raise InvalidRequestError(f"{HEADER_LENGTH} must be a non-negative integer, got {declared!r}")
    if length > len(body):
        raise InvalidRequestError(f"{HEADER_LENGTH} is {length} but the body holds only {len(body)} bytes")
    return body[:length], body[length:]


def _inputs(parsed: InferenceRequest, binary: bytes) -> list[handler.InputTensor]:
    """Each input with its inline data or its slice of the binary section, in order."""
    inputs, offset = [], 0
    for tensor in parsed.inputs:
        size = tensor.parameters.get("binary_data_size")
        shape = tuple(tensor.shape)
        if size is None:
            if tensor.data is None:
                raise InvalidRequestError(
                    f"input '{tensor.name}' has neither 'data' nor parameters.binary_data_size", param=tensor.name
                )
            inputs.append(handler.InputTensor(tensor.name, tensor.datatype, shape, values=tensor.data))
            continue
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise InvalidRequestError(
                f"input '{tensor.name}': parameters.binary_data_size must be a non-negative integer, got {size!r}",
                param=tensor.name,
            )
        if tensor.data is not None:
            raise InvalidRequestError(
                f"input '{tensor.name}' has both 'data' and parameters.binary_data_size", param=tensor.name
            )
        if offset + size > len(binary):
            raise InvalidRequestError(
                f"input '{tensor.name}': binary_data_size is {size} but only {len(binary) - offset} bytes of "
                f"binary data remain after the {HEADER_LENGTH} JSON header",
                param=tensor.name,
            )
        inputs.append(handler.InputTensor(tensor.name, tensor.datatype, shape, raw=binary[offset : offset + size]))
        offset += size
    if offset != len(binary):
        raise InvalidRequestError(
            f"the body holds {len(binary) - offset} bytes after the binary data the inputs declare"
        )
    return inputs


def _binary_outputs(parsed: InferenceRequest) -> dict[str | None, bool]:
    """Which outputs go to the binary section; key None holds the request-wide default."""
    choice: dict[str | None, bool] = {None: _flag(parsed.parameters, "binary_data_output", "request")}
    for output in parsed.outputs or []:
        if "binary_data" in output.parameters:
            choice[output.name] = _flag(output.parameters, "binary_data", f"output '{output.name}'")
    return choice


def _response(result: handler.InferResponse, binary_outputs: dict[str | None, bool]) -> Response:
    """JSON, or a JSON header plus the binary section when any output asks for binary data."""
    outputs, chunks = [], []
    for output in result.outputs:
        if binary_outputs.get(output.name, binary_outputs[None]):
            chunk = tensors.to_binary(output.datatype, output.data)
            chunks.append(chunk)
            outputs.append(ResponseOutput(name=output.name, datatype=output.datatype, shape=output.shape,
                                          parameters={"binary_data_size": len(chunk)}))
        else:
            outputs.append(ResponseOutput(name=output.name, datatype=output.datatype, shape=output.shape,
                                          data=tensors.to_json_data(output.datatype, output.data)))
    body = InferenceResponse(model_name=result.model, model_version=result.version, id=result.id, outputs=outputs)
    content = body.model_dump(exclude_none=True)
    if not chunks:
        return FastJSONResponse(content)
    header = json.dumps(content, ensure_ascii=False).encode("utf-8")
    return Response(
        header + b"".join(chunks),
        media_type=BINARY_CONTENT_TYPE,
        headers={HEADER_LENGTH: str(len(header))},
    )


def _flag(parameters: dict[str, Any], key: str, owner: str) -> bool:
    value = parameters.get(key, False)
    if not isinstance(value, bool):
        raise InvalidRequestError(f"{owner}: parameters.{key} must be true or false, got {value!r}", param=key)
    return value
