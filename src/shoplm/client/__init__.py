"""Python clients for the shoplm model server, as any outside application would use them.

``ModelClient`` / ``AsyncModelClient`` speak HTTP (OpenAI routes for chat, completions and
embeddings; KServe v2 for classification and raw tensors); ``GrpcModelClient`` speaks KServe v2
over gRPC. All have timeouts and retry 429/503 answers, honouring ``Retry-After``.

Exceptions::

    ModelServerError            the server answered an error (status, message, request id)
    └── ModelServerUnavailable  no answer: connection refused, timed out, retries used up
"""

from shoplm.client.errors import ModelServerError, ModelServerUnavailable
from shoplm.client.grpc import GrpcModelClient
from shoplm.client.http import AsyncModelClient, ChatResult, ModelClient
from shoplm.client.results import Classification

__all__ = [
    "AsyncModelClient",
    "ChatResult",
    "Classification",
    "GrpcModelClient",
    "ModelClient",
    "ModelServerError",
    "ModelServerUnavailable",
]
