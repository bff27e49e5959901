"""KServe v2 gRPC front end, driven by tritonclient.grpc and the raw generated stub."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import grpc
import httpx
import numpy as np
import pytest
import tritonclient.grpc as triton_grpc
from prometheus_client.parser import text_string_to_metric_families
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc
from tritonclient.utils import InferenceServerException

from tests.helpers.server import KEYED_API_KEY, ServerProcess

API_KEY = KEYED_API_KEY


@pytest.fixture(scope="module")
def client(tiny_server: ServerProcess) -> Iterator[triton_grpc.InferenceServerClient]:
    triton = triton_grpc.InferenceServerClient(tiny_server.grpc_address)
    yield triton
    triton.close()


@pytest.fixture(scope="module")
def stub(tiny_server: ServerProcess) -> Iterator[service_pb2_grpc.GRPCInferenceServiceStub]:
    with grpc.insecure_channel(tiny_server.grpc_address) as channel:
        yield service_pb2_grpc.GRPCInferenceServiceStub(channel)


def text_input(texts: list[str] | list[bytes], shape: list[int] | None = None) -> triton_grpc.InferInput:
    data = np.array([t.encode() if isinstance(t, str) else t for t in texts], dtype=object)
    tensor = triton_grpc.InferInput("text", shape or [len(texts)], "BYTES")
    tensor.set_data_from_numpy(data.reshape(shape or [len(texts)]))
    return tensor


def request_counts(server: ServerProcess) -> dict[tuple[str, ...], float]:
    """shoplm_requests_total by (model, version, route, status), read from /metrics."""
    text = httpx.get(f"{server.http_url}/metrics", timeout=10).text
    counts: dict[tuple[str, ...], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "shoplm_requests_total":
                labels = sample.labels
                counts[(labels["model"], labels["version"], labels["route"], labels["status"])] = sample.value
    return counts


def infer_error(client: triton_grpc.InferenceServerClient, model: str, inputs: list[Any], **kwargs: Any) -> Any:
    with pytest.raises(InferenceServerException) as raised:
        client.infer(model, inputs, **kwargs)
    return raised.value


# --- health and metadata ---------------------------------------------------------------


def test_server_health_and_metadata(client: triton_grpc.InferenceServerClient) -> None:
    assert client.is_server_live() is True
    assert client.is_server_ready() is True
    metadata = client.get_server_metadata()
    assert metadata.name == "shoplm"
    assert metadata.version
    assert "binary_tensor_data" in metadata.extensions


@pytest.mark.parametrize("model", ["embed", "classify", "fill", "gen"])
def test_every_model_is_ready(client: triton_grpc.InferenceServerClient, model: str) -> None:
    assert client.is_model_ready(model) is True
    assert client.is_model_ready(model, "1") is True


def test_model_ready_of_unknown_model_and_version_is_not_found(client: triton_grpc.InferenceServerClient) -> None:
    with pytest.raises(InferenceServerException) as unknown_model:
        client.is_model_ready("nope")
    with pytest.raises(InferenceServerException) as unknown_version:
        client.is_model_ready("embed", "9")

    assert unknown_model.value.status() == "StatusCode.NOT_FOUND"
    assert unknown_version.value.status() == "StatusCode.NOT_FOUND"
    assert "no version '9'" in unknown_version.value.message()


def test_model_metadata_lists_exact_tensors(client: triton_grpc.InferenceServerClient, embedding_dim: int) -> None:
    expected_outputs = {
        "embed": [("embedding", "FP32", [-1, embedding_dim])],
        "classify": [("probabilities", "FP32", [-1, 2]), ("label", "BYTES", [-1]), ("score", "FP32", [-1])],
        "fill": [("token", "BYTES", [-1, -1]), ("score", "FP32", [-1, -1])],
        "gen": [("text_output", "BYTES", [-1])],
    }
    for model, outputs in expected_outputs.items():
        metadata = client.get_model_metadata(model)
        assert metadata.name == model
        assert list(metadata.versions) == ["1"]
        assert metadata.platform == "pytorch_transformers"
        assert [(t.name, t.datatype, list(t.shape)) for t in metadata.inputs] == [("text", "BYTES", [-1])]
        assert [(t.name, t.datatype, list(t.shape)) for t in metadata.outputs] == outputs


def test_unknown_model_metadata_is_not_found(client: triton_grpc.InferenceServerClient) -> None:
    with pytest.raises(InferenceServerException) as raised:
        client.get_model_metadata("nope")

    assert raised.value.status() == "StatusCode.NOT_FOUND"
    assert "'nope' does not exist" in raised.value.message()


def test_rpcs_not_implemented_answer_unimplemented(stub: service_pb2_grpc.GRPCInferenceServiceStub) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        stub.ModelConfig(pb.ModelConfigRequest(name="embed"))

    assert raised.value.code() == grpc.StatusCode.UNIMPLEMENTED


# --- inference --------------------------------------------------------------------------


def test_embed_rows_are_normalized(client: triton_grpc.InferenceServerClient, embedding_dim: int) -> None:
    result = client.infer("embed", [text_input(["red running shoes", "blue cotton shirt", "fox"])], request_id="r-1")

    embedding = result.as_numpy("embedding")
    assert embedding.shape == (3, embedding_dim)
    assert embedding.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(embedding, axis=1), np.ones(3), rtol=1e-5)
    response = result.get_response()
    assert (response.model_name, response.model_version, response.id) == ("embed", "1", "r-1")


def test_grpc_and_rest_give_the_same_embedding(
    client: triton_grpc.InferenceServerClient, tiny_server: ServerProcess
) -> None:
    body = {"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["fast delivery"]}]}
    rest = httpx.post(f"{tiny_server.http_url}/v2/models/embed/infer", json=body, timeout=30).json()

    over_grpc = client.infer("embed", [text_input(["fast delivery"])]).as_numpy("embedding")

    np.testing.assert_allclose(over_grpc.reshape(-1), np.array(rest["outputs"][0]["data"]), rtol=1e-6)


def test_classify_returns_probabilities_label_and_score(client: triton_grpc.InferenceServerClient) -> None:
    result = client.infer("classify", [text_input(["a great product", "terrible quality"], shape=[2, 1])])

    probabilities = result.as_numpy("probabilities")
    labels = [label.decode() for label in result.as_numpy("label")]
    assert probabilities.shape == (2, 2)
    np.testing.assert_allclose(probabilities.sum(axis=1), np.ones(2), rtol=1e-5)
    assert all(label in ("negative", "positive") for label in labels)
    assert labels == [["negative", "positive"][i] for i in probabilities.argmax(axis=1)]
    np.testing.assert_allclose(result.as_numpy("score"), probabilities.max(axis=1))


def test_requested_outputs_only(client: triton_grpc.InferenceServerClient) -> None:
    result = client.infer("classify", [text_input(["a great product"])],
                          outputs=[triton_grpc.InferRequestedOutput("label")])

    assert [output.name for output in result.get_response().outputs] == ["label"]
    assert result.as_numpy("label").shape == (1,)


def test_fill_mask_returns_top_k_candidates(client: triton_grpc.InferenceServerClient) -> None:
    result = client.infer("fill", [text_input(["red [MASK] shoes"])], parameters={"top_k": 4})

    tokens, scores = result.as_numpy("token"), result.as_numpy("score")
    assert tokens.shape == (1, 4)
    assert scores.shape == (1, 4)
    assert (np.diff(scores, axis=1) <= 0).all()


def test_generate_returns_one_text_per_prompt(client: triton_grpc.InferenceServerClient) -> None:
    parameters = {"max_tokens": 4, "temperature": 0.0, "stop": '["zzz", "qqq"]', "seed": 3}

    first = client.infer("gen", [text_input(["red running", "blue"])], parameters=parameters)
    second = client.infer("gen", [text_input(["red running", "blue"])], parameters=parameters)

    texts = first.as_numpy("text_output")
    assert texts.shape == (2,)
    assert all(isinstance(text, bytes) and text for text in texts)
    assert list(texts) == list(second.as_numpy("text_output"))


def test_typed_contents_are_accepted(stub: service_pb2_grpc.GRPCInferenceServiceStub, embedding_dim: int) -> None:
    request = pb.ModelInferRequest(model_name="embed")
    tensor = request.inputs.add(name="text", datatype="BYTES", shape=[2])
    tensor.contents.bytes_contents.extend([b"red running shoes", b"fox"])

    response = stub.ModelInfer(request)

    assert [(o.name, o.datatype, list(o.shape)) for o in response.outputs] == [
        ("embedding", "FP32", [2, embedding_dim])
    ]
    assert len(response.raw_output_contents[0]) == 2 * embedding_dim * 4


# --- bad requests -----------------------------------------------------------------------


def test_unknown_model_and_version_are_not_found(client: triton_grpc.InferenceServerClient) -> None:
    unknown_model = infer_error(client, "nope", [text_input(["red"])])
    unknown_version = infer_error(client, "embed", [text_input(["red"])], model_version="9")

    assert unknown_model.status() == "StatusCode.NOT_FOUND"
    assert "model 'nope' does not exist" in unknown_model.message()
    assert unknown_version.status() == "StatusCode.NOT_FOUND"
    assert "model 'embed' has no version '9' loaded" in unknown_version.message()


def test_bad_inputs_are_invalid_argument(client: triton_grpc.InferenceServerClient) -> None:
    fp32 = triton_grpc.InferInput("text", [1], "FP32")
    fp32.set_data_from_numpy(np.array([1.0], dtype=np.float32))
    query = triton_grpc.InferInput("query", [1], "BYTES")
    query.set_data_from_numpy(np.array([b"red"], dtype=object))
    cases: list[tuple[str, list[Any], dict[str, Any], str]] = [
        ("embed", [fp32], {}, "input 'text' must have datatype BYTES, got 'FP32'"),
        ("embed", [query], {}, "unknown input 'query'"),
        ("embed", [], {}, "missing input 'text'"),
        ("embed", [text_input(["red", "blue"], shape=[1, 2])], {}, "must have shape [N] or [N, 1], got [1, 2]"),
        ("embed", [text_input([b"caf\xe9"])], {}, "input 'text[0]' is not valid UTF-8"),
        ("embed", [text_input([" "])], {}, "'text' is empty"),
        ("embed", [text_input(["red"])], {"outputs": [triton_grpc.InferRequestedOutput("vector")]},
         "unknown output 'vector'; model 'embed' gives: embedding"),
        ("fill", [text_input(["red [MASK]"])], {"parameters": {"top_k": 51}},
         "parameter 'top_k': Input should be less than or equal to 50"),
        ("fill", [text_input(["red [MASK]"])], {"parameters": {"top_k": True}},
         "parameter 'top_k': Value error, must be a number, not a boolean"),
        ("gen", [text_input(["red"])], {"parameters": {"top_p": 0.0}},
         "parameter 'top_p': Input should be greater than 0"),
        ("gen", [text_input([""])], {}, "input 'text[0]' is empty"),
    ]
    for model, inputs, kwargs, message in cases:
        error = infer_error(client, model, inputs, **kwargs)
        assert error.status() == "StatusCode.INVALID_ARGUMENT", message
        assert message in error.message()
    assert client.is_server_ready() is True


def test_shape_and_data_mismatch_is_invalid_argument(stub: service_pb2_grpc.GRPCInferenceServiceStub) -> None:
    typed = pb.ModelInferRequest(model_name="embed")
    typed.inputs.add(name="text", datatype="BYTES", shape=[3]).contents.bytes_contents.extend([b"red"])
    raw = pb.ModelInferRequest(model_name="embed", raw_input_contents=[b"\x03\x00\x00\x00red"])
    raw.inputs.add(name="text", datatype="BYTES", shape=[2])
    unmatched = pb.ModelInferRequest(model_name="embed", raw_input_contents=[b"", b""])
    unmatched.inputs.add(name="text", datatype="BYTES", shape=[0])

    messages = []
    for request in (typed, raw, unmatched):
        with pytest.raises(grpc.RpcError) as raised:
            stub.ModelInfer(request)
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        messages.append(raised.value.details())

    assert messages == [
        "input 'text': shape [3] needs 3 elements but its data holds 1",
        "input 'text': shape [2] needs 2 elements but its binary data holds 1",
        "raw_input_contents holds 2 entries for 1 inputs; send raw contents for every input or for none",
    ]


def test_message_over_the_body_limit_is_resource_exhausted(client: triton_grpc.InferenceServerClient) -> None:
    error = infer_error(client, "embed", [text_input(["x" * 1_100_000])])

    assert error.status() == "StatusCode.RESOURCE_EXHAUSTED"
    assert client.is_server_live() is True


def test_calls_are_counted_and_logged(client: triton_grpc.InferenceServerClient, tiny_server: ServerProcess) -> None:
    client.infer("classify", [text_input(["a great product"])], request_id="grpc-log-check")
    infer_error(client, "classify", [text_input([""])])

    counts = request_counts(tiny_server)
    assert counts[("classify", "1", "grpc:ModelInfer", "OK")] >= 1
    assert counts[("classify", "", "grpc:ModelInfer", "INVALID_ARGUMENT")] >= 1
    log_lines = [json.loads(line) for line in tiny_server.log_text().splitlines() if "grpc-log-check" in line]
    assert [(line["route"], line["status"], line["model"]) for line in log_lines] == [
        ("grpc:ModelInfer", "OK", "classify")
    ]


def test_unknown_model_names_do_not_become_metric_labels(
    client: triton_grpc.InferenceServerClient, tiny_server: ServerProcess
) -> None:
    infer_error(client, "made-up-model-name", [text_input(["red"])])

    assert "made-up-model-name" not in httpx.get(f"{tiny_server.http_url}/metrics", timeout=10).text


# --- API keys ---------------------------------------------------------------------------


def test_health_rpcs_are_public_and_the_rest_need_a_key(keyed_server: ServerProcess) -> None:
    triton = triton_grpc.InferenceServerClient(keyed_server.grpc_address)
    good = {"authorization": f"Bearer {API_KEY}"}

    assert triton.is_server_live() is True
    assert triton.is_server_ready() is True
    assert triton.is_model_ready("embed") is True
    for call in (lambda: triton.get_server_metadata(), lambda: triton.get_model_metadata("embed"),
                 lambda: triton.infer("embed", [text_input(["red"])]),
                 lambda: triton.infer("embed", [text_input(["red"])], headers={"authorization": "Bearer wrong"})):
        with pytest.raises(InferenceServerException) as raised:
            call()
        assert raised.value.status() == "StatusCode.UNAUTHENTICATED"
        assert "API key" in raised.value.message()
    assert triton.infer("embed", [text_input(["red"])], headers=good).as_numpy("embedding").shape[0] == 1
    assert triton.get_model_metadata("embed", headers=good).name == "embed"
    triton.close()


def test_unloaded_model_is_not_ready_but_the_server_is(keyed_server: ServerProcess) -> None:
    triton = triton_grpc.InferenceServerClient(keyed_server.grpc_address)
    headers = {"authorization": f"Bearer {API_KEY}"}

    assert triton.is_server_ready() is True
    assert triton.is_model_ready("idle") is False
    with pytest.raises(InferenceServerException) as raised:
        triton.infer("idle", [text_input(["red"])], headers=headers)
    assert raised.value.status() == "StatusCode.UNAVAILABLE"
    assert raised.value.message() == "model 'idle' is unloaded"
    triton.close()


def test_full_queue_is_resource_exhausted_with_pushback(keyed_server: ServerProcess) -> None:
    request = pb.ModelInferRequest(model_name="tight")
    request.inputs.add(name="text", datatype="BYTES", shape=[2]).contents.bytes_contents.extend([b"red", b"blue"])

    with grpc.insecure_channel(keyed_server.grpc_address) as channel, pytest.raises(grpc.RpcError) as raised:
        service_pb2_grpc.GRPCInferenceServiceStub(channel).ModelInfer(
            request, metadata=[("authorization", f"Bearer {API_KEY}")]
        )

    assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "queue is full (max_queue_size=1)" in raised.value.details()
    pushback = dict(raised.value.trailing_metadata())["grpc-retry-pushback-ms"]
    assert int(pushback) >= 1
