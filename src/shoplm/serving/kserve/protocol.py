"""Bodies of the KServe v2 (Open Inference Protocol) front ends.

The request/response models describe the REST JSON header; the parameter models validate the
request ``parameters`` of both REST and gRPC and turn them into engine settings.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Self

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator

from shoplm.serving.errors import InvalidRequestError


def _not_bool(value: Any) -> Any:
    # pydantic's lax int/float accept true/false; a flag where a number belongs is a client bug.
    if isinstance(value, bool):
        raise ValueError("must be a number, not a boolean")
    return value


Integer = Annotated[int, BeforeValidator(_not_bool)]
Number = Annotated[float, BeforeValidator(_not_bool)]


class KServeModel(BaseModel):
    """Lenient about fields we do not use, as the protocol allows extensions."""

    model_config = ConfigDict(extra="allow")


class RequestInput(KServeModel):
    """One input tensor of the JSON header; its data is inline or in the binary section."""

    name: str = Field(min_length=1)
    shape: list[Annotated[int, Field(ge=0)]]
    datatype: str = Field(min_length=1)
    parameters: dict[str, Any] = Field(default_factory=dict)
    data: list[Any] | None = Field(None, description="Row-major elements, flat or nested.")


class RequestOutput(KServeModel):
    """An output the client asks for; ``parameters.binary_data`` selects the binary section."""

    name: str = Field(min_length=1)
    parameters: dict[str, Any] = Field(default_factory=dict)


class InferenceRequest(KServeModel):
    """``POST /v2/models/{name}/infer`` (the JSON header when binary data follows)."""

    id: str | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)
    inputs: list[RequestInput]
    outputs: list[RequestOutput] | None = None


class ResponseOutput(BaseModel):
    name: str
    datatype: str
    shape: list[int]
    parameters: dict[str, Any] | None = None
    data: list[Any] | None = None


class InferenceResponse(BaseModel):
    model_name: str
    model_version: str
    id: str | None = None
    outputs: list[ResponseOutput]


class TensorMetadata(BaseModel):
    name: str
    datatype: str
    shape: list[int]


class ModelMetadataResponse(BaseModel):
    name: str
    versions: list[str]
    platform: str
    inputs: list[TensorMetadata]
    outputs: list[TensorMetadata]


class ServerMetadataResponse(BaseModel):
    name: str
    version: str
    extensions: list[str]


# --- request parameters, shared by REST and gRPC ----------------------------------------


class TaskParameters(BaseModel):
    """Request parameters of one task; parameters meant for other tasks are ignored."""

    model_config = ConfigDict(extra="ignore")

    @classmethod
    def parse(cls, parameters: dict[str, Any]) -> Self:
        """Validate ``parameters``; a bad one is a 400 naming it and its limit."""
        try:
            return cls.model_validate(parameters)
        except ValidationError as error:
            problems = []
            for problem in error.errors():
                field = ".".join(str(part) for part in problem["loc"]) or "parameters"
                problems.append(f"parameter '{field}': {problem['msg']}")
            raise InvalidRequestError("; ".join(problems), param="parameters") from None


class FillMaskParameters(TaskParameters):
    top_k: Integer = Field(5, ge=1, le=50, description="Candidates returned for the first mask.")


class GenerateParameters(TaskParameters):
    max_tokens: Integer | None = Field(None, ge=1, description="Default: the model's default_max_new_tokens.")
    temperature: Number = Field(1.0, ge=0.0, le=2.0, description="0 means greedy.")
    top_p: Number = Field(1.0, gt=0.0, le=1.0)
    top_k: Integer = Field(0, ge=0, le=1000, description="0 disables top-k.")
    seed: Integer | None = Field(None, ge=0, le=2**63 - 1)
    stop: str | list[str] | None = Field(None, description="A string, or a JSON list of strings.")
    frequency_penalty: Number = Field(0.0, ge=-2.0, le=2.0)
    presence_penalty: Number = Field(0.0, ge=-2.0, le=2.0)

    @field_validator("stop", mode="before")
    @classmethod
    def _stop_strings(cls, value: Any) -> Any:
        # gRPC parameters are scalars, so a list of stops travels as a JSON string.
        if isinstance(value, str) and value.startswith("["):
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                return value
        if isinstance(value, str):
            value = [value]
        if isinstance(value, list) and any(isinstance(stop, str) and not stop for stop in value):
            raise ValueError("stop sequences must not be empty")
        return value

    def to_sampling_params(self) -> dict[str, Any]:
        """Engine settings for ``InferenceService.completion_request`` (it adds the limits)."""
        return {
            "max_new_tokens": self.max_tokens,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "top_k": self.top_k,
            "stop": list(self.stop) if self.stop else None,
            "seed": self.seed,
            "frequency_penalty": self.frequency_penalty,
            "presence_penalty": self.presence_penalty,
        }
