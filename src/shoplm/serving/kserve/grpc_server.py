"""KServe v2 gRPC front end (``inference.GRPCInferenceService``) over the shared handler.

The servicer uses the generated stubs shipped in ``tritonclient`` so that it speaks exactly
what ``tritonclient.grpc`` (and any other KServe v2 client) expects. Inputs arrive in typed
``contents`` or in ``raw_input_contents``; outputs go back in ``raw_output_contents``, which
is what ``InferResult.as_numpy`` reads. RPCs not implemented here answer UNIMPLEMENTED.
"""

from __future__ import annotations

import asyncio
import logging
import math
import string
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc
from google.protobuf.message import Message
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc

from shoplm.serving.errors import (
    AuthenticationError,
    InvalidRequestError,
    ModelNotFoundError,
    ModelNotReadyError,
    PayloadTooLargeError,
    RequestTimeoutError,
    ServerBusyError,
    ServingError,
)
from shoplm.serving.kserve import handler, tensors
from shoplm.serving.state import ServerState

logger = logging.getLogger(__name__)
access_logger = logging.getLogger("shoplm.access")

SERVICE_PATH = "/inference.GRPCInferenceService"
RETRY_PUSHBACK_KEY = "grpc-retry-pushback-ms"
_ID_CHARACTERS = set(string.ascii_letters + string.digits + "-_.:")

STATUS_CODES: dict[type[ServingError], grpc.StatusCode] = {
    InvalidRequestError: grpc.StatusCode.INVALID_ARGUMENT,
    AuthenticationError: grpc.StatusCode.UNAUTHENTICATED,
    ModelNotFoundError: grpc.StatusCode.NOT_FOUND,
    PayloadTooLargeError: grpc.StatusCode.RESOURCE_EXHAUSTED,
    ServerBusyError: grpc.StatusCode.RESOURCE_EXHAUSTED,
    ModelNotReadyError: grpc.StatusCode.UNAVAILABLE,
    RequestTimeoutError: grpc.StatusCode.DEADLINE_EXCEEDED,
}

ResponseT = TypeVar("ResponseT", bound=Message)


def status_code(error: ServingError) -> grpc.StatusCode:
    """The gRPC status of a serving error (its nearest mapped class decides)."""
    for cls in type(error).__mro__:
        if cls in STATUS_CODES:
            return STATUS_CODES[cls]
    return grpc.StatusCode.INTERNAL


class KServeServicer(service_pb2_grpc.GRPCInferenceServiceServicer):
    """Health, metadata and inference RPCs; every call is authenticated, counted and logged."""

    def __init__(self, state: ServerState) -> None:
        self.state = state

    async def ServerLive(self, request: pb.ServerLiveRequest, context: grpc.aio.ServicerContext) -> Any:
        async def run() -> tuple[pb.ServerLiveResponse, str]:
            return pb.ServerLiveResponse(live=True), ""

        return await self._serve("ServerLive", context, run, public=True)

    async def ServerReady(self, request: pb.ServerReadyRequest, context: grpc.aio.ServicerContext) -> Any:
        async def run() -> tuple[pb.ServerReadyResponse, str]:
            try:
                handler.check_server_ready(self.state.registry)
            except ModelNotReadyError:
                return pb.ServerReadyResponse(ready=False), ""
            return pb.ServerReadyResponse(ready=True), ""

        return await self._serve("ServerReady", context, run, public=True)

    async def ModelReady(self, request: pb.ModelReadyRequest, context: grpc.aio.ServicerContext) -> Any:
        async def run() -> tuple[pb.ModelReadyResponse, str]:
            try:
                handle = handler.check_model_ready(self.state.registry, request.name, request.version or None)
            except ModelNotReadyError:
                return pb.ModelReadyResponse(ready=False), ""
            return pb.ModelReadyResponse(ready=True), handle.version

        return await self._serve("ModelReady", context, run, model=request.name, public=True)

    async def ServerMetadata(self, request: pb.ServerMetadataRequest, context: grpc.aio.ServicerContext) -> Any:
        async def run() -> tuple[pb.ServerMetadataResponse, str]:
            return pb.ServerMetadataResponse(**handler.server_metadata()), ""

        return await self._serve("ServerMetadata", context, run)

    async def ModelMetadata(self, request: pb.ModelMetadataRequest, context: grpc.aio.ServicerContext) -> Any:
        async def run() -> tuple[pb.ModelMetadataResponse, str]:
            metadata = handler.model_metadata(self.state.registry, request.name, request.version or None)
            response = pb.ModelMetadataResponse(
                name=metadata.name,
                versions=metadata.versions,
                platform=metadata.platform,
                inputs=[_tensor_metadata(spec) for spec in metadata.inputs],
                outputs=[_tensor_metadata(spec) for spec in metadata.outputs],
            )
            return response, metadata.versions[0]

        return await self._serve("ModelMetadata", context, run, model=request.name)

    async def ModelInfer(self, request: pb.ModelInferRequest, context: grpc.aio.ServicerContext) -> Any:
        async def run() -> tuple[pb.ModelInferResponse, str]:
            result = await handler.infer(self.state.service, infer_request(request))
            response = pb.ModelInferResponse(model_name=result.model, model_version=result.version, id=request.id)
            for output in result.outputs:
                response.outputs.add(name=output.name, datatype=output.datatype, shape=output.shape)
                response.raw_output_contents.append(tensors.to_binary(output.datatype, output.data))
            return response, result.version

        return await self._serve("ModelInfer", context, run, model=request.model_name, request_id=request.id)

    async def _serve(
        self,
        method: str,
        context: grpc.aio.ServicerContext,
        run: Callable[[], Awaitable[tuple[ResponseT, str]]],
        *,
        model: str = "",
        request_id: str = "",
        public: bool = False,
    ) -> ResponseT:
        """Authenticate, run, map errors to statuses; one metric sample and log line per call."""
        started = time.perf_counter()
        request_id = (
            _loggable_id(request_id) or _loggable_id(_metadata_value(context, "x-request-id")) or uuid.uuid4().hex
        )
        code = grpc.StatusCode.OK
        # Labels only name configured models and answering versions: clients must not be able
        # to grow the metric series without bound.
        model = model if model in self.state.registry.entries else ""
        version = ""
        try:
            if not public:
                self._authenticate(context)
            response, version = await run()
            return response
        except ServingError as error:
            code = status_code(error)
            if isinstance(error, ServerBusyError):
                pushback_ms = str(math.ceil(error.retry_after_s * 1000))
                context.set_trailing_metadata(((RETRY_PUSHBACK_KEY, pushback_ms),))
            await context.abort(code, error.message)
            raise  # abort raises; this keeps type checkers aware the call ends here
        except asyncio.CancelledError:
            code = grpc.StatusCode.CANCELLED
            raise
        except Exception:
            code = grpc.StatusCode.INTERNAL
            logger.exception("unhandled error", extra={"request_id": request_id, "route": f"grpc:{method}"})
            await context.abort(code, f"internal error (request id {request_id})")
            raise
        finally:
            self._record(method, context, request_id, model, version, code, started)

    def _authenticate(self, context: grpc.aio.ServicerContext) -> None:
        scheme, _, token = (_metadata_value(context, "authorization") or "").partition(" ")
        bearer = token.strip() if scheme.lower() == "bearer" and token.strip() else None
        if not self.state.api_keys.allows(bearer, admin=False):
            raise AuthenticationError("missing or invalid API key; send metadata 'authorization: Bearer <key>'")

    def _record(
        self, method: str, context: grpc.aio.ServicerContext, request_id: str, model: str, version: str,
        code: grpc.StatusCode, started: float,
    ) -> None:
        elapsed = time.perf_counter() - started
        route = f"grpc:{method}"
        metrics = self.state.metrics
        metrics.requests.labels(model, version, route, code.name).inc()
        metrics.request_latency.labels(model, route).observe(elapsed)
        access_logger.info(
            "request",
            extra={
                "request_id": request_id,
                "method": "grpc",
                "path": f"{SERVICE_PATH}/{method}",
                "route": route,
                "status": code.name,
                "latency_ms": round(elapsed * 1000, 2),
                "model": model or None,
                "model_version": version or None,
                "client": context.peer(),
            },
        )


def infer_request(request: pb.ModelInferRequest) -> handler.InferRequest:
    """The protocol-neutral form of a gRPC inference request."""
    raw = list(request.raw_input_contents)
    if raw and len(raw) != len(request.inputs):
        raise InvalidRequestError(
            f"raw_input_contents holds {len(raw)} entries for {len(request.inputs)} inputs; "
            "send raw contents for every input or for none"
        )
    inputs = []
    for index, tensor in enumerate(request.inputs):
        shape = tuple(tensor.shape)
        if raw:
            if tensor.contents.ByteSize():
                raise InvalidRequestError(
                    f"input '{tensor.name}' has both 'contents' and raw_input_contents", param=tensor.name
                )
            inputs.append(handler.InputTensor(tensor.name, tensor.datatype, shape, raw=raw[index]))
        else:
            field = tensors.GRPC_CONTENTS_FIELDS.get(tensor.datatype)
            values = getattr(tensor.contents, field) if field else ()
            inputs.append(handler.InputTensor(tensor.name, tensor.datatype, shape, values=values))
    outputs = [handler.RequestedOutput(output.name, _parameters(output.parameters)) for output in request.outputs]
    return handler.InferRequest(
        model=request.model_name,
        version=request.model_version or None,
        id=request.id or None,
        inputs=inputs,
        parameters=_parameters(request.parameters),
        outputs=outputs or None,
    )


def _parameters(parameters: Any) -> dict[str, Any]:
    values = {}
    for key, parameter in parameters.items():
        choice = parameter.WhichOneof("parameter_choice")
        values[key] = getattr(parameter, choice) if choice else None
    return values


def _tensor_metadata(spec: handler.TensorSpec) -> pb.ModelMetadataResponse.TensorMetadata:
    return pb.ModelMetadataResponse.TensorMetadata(name=spec.name, datatype=spec.datatype, shape=list(spec.shape))


def _loggable_id(candidate: str | None) -> str | None:
    """A client-chosen id, if it is short and plain enough to go into logs as is."""
    if candidate and len(candidate) <= 128 and set(candidate) <= _ID_CHARACTERS:
        return candidate
    return None


def _metadata_value(context: grpc.aio.ServicerContext, key: str) -> str | None:
    for name, value in context.invocation_metadata() or ():
        if name == key:
            return value if isinstance(value, str) else value.decode("latin-1")
    return None


def create_grpc_server(state: ServerState, host: str, port: int) -> grpc.aio.Server:
    """A gRPC server with the KServe v2 service bound to ``host:port``, not yet started."""
    server = grpc.aio.server(options=[("grpc.max_receive_message_length", state.config.server.max_body_bytes)])
    service_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(KServeServicer(state), server)
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    server.add_insecure_port(address)
    return server
