"""KServe v2 REST front end, driven by tritonclient.http and raw httpx against a real server."""

from __future__ import annotations

import gzip
import json
import struct
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest
import tritonclient.http as triton_http
from tritonclient.utils import InferenceServerException

from tests.helpers.server import KEYED_API_KEY, ServerProcess

API_KEY = KEYED_API_KEY


@pytest.fixture(scope="module")
def client(tiny_server: ServerProcess) -> Iterator[triton_http.InferenceServerClient]:
    triton = triton_http.InferenceServerClient(tiny_server.http_address)
    yield triton
    triton.close()


@pytest.fixture(scope="module")
def http(tiny_server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=tiny_server.http_url, timeout=30) as session:
        yield session


def text_input(texts: list[str], *, binary: bool = True) -> triton_http.InferInput:
    tensor = triton_http.InferInput("text", [len(texts)], "BYTES")
    tensor.set_data_from_numpy(np.array([t.encode() for t in texts], dtype=object), binary_data=binary)
    return tensor


def json_body(texts: list[Any], **extra: Any) -> dict[str, Any]:
    return {"inputs": [{"name": "text", "shape": [len(texts)], "datatype": "BYTES", "data": texts}], **extra}


def serialize_bytes(elements: list[bytes]) -> bytes:
    return b"".join(struct.pack("<I", len(element)) + element for element in elements)


# --- health and metadata ---------------------------------------------------------------


def test_server_health_and_metadata(client: triton_http.InferenceServerClient) -> None:
    assert client.is_server_live() is True
    assert client.is_server_ready() is True
    metadata = client.get_server_metadata()
    assert metadata["name"] == "shoplm"
    assert metadata["version"]
    assert "binary_tensor_data" in metadata["extensions"]


@pytest.mark.parametrize("model", ["embed", "classify", "fill", "gen"])
def test_every_model_is_ready(client: triton_http.InferenceServerClient, model: str) -> None:
    assert client.is_model_ready(model) is True
    assert client.is_model_ready(model, "1") is True


def test_model_ready_answers_404_for_unknown_model_and_version(http: httpx.Client) -> None:
    unknown_model = http.get("/v2/models/nope/ready")
    unknown_version = http.get("/v2/models/embed/versions/9/ready")

    assert unknown_model.status_code == 404
    assert "'nope' does not exist" in unknown_model.json()["error"]
    assert unknown_version.status_code == 404
    assert "no version '9'" in unknown_version.json()["error"]


def test_model_metadata_lists_exact_tensors(client: triton_http.InferenceServerClient, embedding_dim: int) -> None:
    text = {"name": "text", "datatype": "BYTES", "shape": [-1]}
    expected_outputs = {
        "embed": [{"name": "embedding", "datatype": "FP32", "shape": [-1, embedding_dim]}],
        "classify": [
            {"name": "probabilities", "datatype": "FP32", "shape": [-1, 2]},
            {"name": "label", "datatype": "BYTES", "shape": [-1]},
            {"name": "score", "datatype": "FP32", "shape": [-1]},
        ],
        "fill": [
            {"name": "token", "datatype": "BYTES", "shape": [-1, -1]},
            {"name": "score", "datatype": "FP32", "shape": [-1, -1]},
        ],
        "gen": [{"name": "text_output", "datatype": "BYTES", "shape": [-1]}],
    }
    for model, outputs in expected_outputs.items():
        metadata = client.get_model_metadata(model)
        assert metadata == {
            "name": model, "versions": ["1"], "platform": "pytorch_transformers", "inputs": [text], "outputs": outputs,
        }
    assert client.get_model_metadata("embed", "1")["versions"] == ["1"]


# --- inference with tritonclient (binary tensor data by default) ------------------------


def test_embed_rows_are_normalized(client: triton_http.InferenceServerClient, embedding_dim: int) -> None:
    result = client.infer("embed", [text_input(["red running shoes", "blue cotton shirt", "fox"])])

    embedding = result.as_numpy("embedding")
    assert embedding.shape == (3, embedding_dim)
    assert embedding.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(embedding, axis=1), np.ones(3), rtol=1e-5)
    assert result.get_response()["model_version"] == "1"


def test_embed_answers_the_same_over_json_and_binary(client: triton_http.InferenceServerClient) -> None:
    binary = client.infer("embed", [text_input(["fast delivery"])]).as_numpy("embedding")
    as_json = client.infer(
        "embed", [text_input(["fast delivery"], binary=False)],
        outputs=[triton_http.InferRequestedOutput("embedding", binary_data=False)],
    ).as_numpy("embedding")

    np.testing.assert_allclose(binary, as_json, rtol=1e-6)


def test_classify_returns_probabilities_label_and_score(client: triton_http.InferenceServerClient) -> None:
    result = client.infer("classify", [text_input(["a great product", "terrible quality"])])

    probabilities = result.as_numpy("probabilities")
    labels = [label.decode() for label in result.as_numpy("label")]
    assert probabilities.shape == (2, 2)
    np.testing.assert_allclose(probabilities.sum(axis=1), np.ones(2), rtol=1e-5)
    assert all(label in ("negative", "positive") for label in labels)
    assert labels == [["negative", "positive"][i] for i in probabilities.argmax(axis=1)]
    np.testing.assert_allclose(result.as_numpy("score"), probabilities.max(axis=1))


def test_fill_mask_returns_top_k_candidates(client: triton_http.InferenceServerClient) -> None:
    result = client.infer("fill", [text_input(["red [MASK] shoes", "blue [MASK] shirt"])], parameters={"top_k": 3})

    tokens, scores = result.as_numpy("token"), result.as_numpy("score")
    assert tokens.shape == (2, 3)
    assert scores.shape == (2, 3)
    assert all(isinstance(token, bytes) and token for token in tokens.reshape(-1))
    assert (np.diff(scores, axis=1) <= 0).all()


def test_fill_mask_defaults_to_five_candidates(client: triton_http.InferenceServerClient) -> None:
    result = client.infer("fill", [text_input(["red [MASK] shoes"])])

    assert result.as_numpy("token").shape == (1, 5)


def test_generate_returns_one_text_per_prompt(client: triton_http.InferenceServerClient) -> None:
    parameters = {"max_tokens": 4, "temperature": 0}
    first = client.infer("gen", [text_input(["red running", "blue"])], parameters=parameters)
    second = client.infer("gen", [text_input(["red running", "blue"])], parameters=parameters)

    texts = first.as_numpy("text_output")
    assert texts.shape == (2,)
    assert all(isinstance(text, bytes) and text for text in texts)
    assert list(texts) == list(second.as_numpy("text_output"))


def test_gzip_compressed_request(client: triton_http.InferenceServerClient, embedding_dim: int) -> None:
    result = client.infer("embed", [text_input(["red running shoes"])], request_compression_algorithm="gzip")

    assert result.as_numpy("embedding").shape == (1, embedding_dim)


def test_version_route_infers_with_that_version(client: triton_http.InferenceServerClient) -> None:
    result = client.infer("classify", [text_input(["a great product"])], model_version="1")

    assert result.get_response()["model_version"] == "1"


# --- raw JSON requests ------------------------------------------------------------------


def test_json_request_gets_json_response(http: httpx.Client, embedding_dim: int) -> None:
    response = http.post("/v2/models/embed/infer", json=json_body(["red running shoes", "fox"], id="req-7"))

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["model_name"] == "embed"
    assert body["model_version"] == "1"
    assert body["id"] == "req-7"
    [output] = body["outputs"]
    assert output["name"] == "embedding"
    assert output["datatype"] == "FP32"
    assert output["shape"] == [2, embedding_dim]
    assert len(output["data"]) == 2 * embedding_dim


def test_json_request_accepts_column_shape_and_nested_data(http: httpx.Client) -> None:
    body = {"inputs": [{"name": "text", "shape": [2, 1], "datatype": "BYTES", "data": [["a great product"], ["bad"]]}]}

    response = http.post("/v2/models/classify/infer", json=body)

    assert response.status_code == 200
    outputs = {output["name"]: output for output in response.json()["outputs"]}
    assert outputs["label"]["shape"] == [2]
    assert outputs["probabilities"]["shape"] == [2, 2]


def test_requested_outputs_come_back_in_request_order(http: httpx.Client) -> None:
    body = json_body(["a great product"], outputs=[{"name": "score"}, {"name": "label"}])

    response = http.post("/v2/models/classify/infer", json=body)

    assert [output["name"] for output in response.json()["outputs"]] == ["score", "label"]


def test_binary_output_only_where_asked(http: httpx.Client) -> None:
    outputs = [{"name": "label"}, {"name": "score", "parameters": {"binary_data": True}}]
    body = json_body(["a great product"], outputs=outputs)

    response = http.post("/v2/models/classify/infer", json=body)

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/octet-stream"
    header_length = int(response.headers["inference-header-content-length"])
    header = json.loads(response.content[:header_length])
    label, score = header["outputs"]
    assert label["data"][0] in ("negative", "positive")
    assert score["parameters"] == {"binary_data_size": 4}
    assert len(response.content) == header_length + 4
    assert 0.5 <= np.frombuffer(response.content[header_length:], dtype="<f4")[0] <= 1.0


def test_hand_built_binary_request(http: httpx.Client) -> None:
    raw = serialize_bytes([b"red [MASK] shoes", b"blue [MASK]"])
    header = json.dumps({
        "inputs": [{"name": "text", "shape": [2], "datatype": "BYTES", "parameters": {"binary_data_size": len(raw)}}],
        "parameters": {"top_k": 2, "binary_data_output": True},
    }).encode()

    response = http.post("/v2/models/fill/infer", content=header + raw,
                         headers={"Inference-Header-Content-Length": str(len(header))})

    assert response.status_code == 200
    header_length = int(response.headers["inference-header-content-length"])
    outputs = json.loads(response.content[:header_length])["outputs"]
    assert [(o["name"], o["shape"]) for o in outputs] == [("token", [2, 2]), ("score", [2, 2])]
    assert sum(o["parameters"]["binary_data_size"] for o in outputs) == len(response.content) - header_length


def test_generate_reads_sampling_parameters(http: httpx.Client) -> None:
    body = json_body(["red running"], parameters={"max_tokens": 3, "temperature": 0, "stop": ["zzz"], "seed": 1})

    response = http.post("/v2/models/gen/infer", json=body)

    assert response.status_code == 200
    [output] = response.json()["outputs"]
    assert output["shape"] == [1]
    assert isinstance(output["data"][0], str)


# --- bad requests -----------------------------------------------------------------------


def text_tensor(**fields: Any) -> dict[str, Any]:
    return {"name": "text", "shape": [1], "datatype": "BYTES", "data": ["red shoes"], **fields}


BAD_REQUESTS = [
    ("unknown model", "nope", {"inputs": [text_tensor()]}, 404, "model 'nope' does not exist"),
    ("wrong datatype", "embed", {"inputs": [text_tensor(datatype="FP32", data=[1.0])]}, 400,
     "input 'text' must have datatype BYTES, got 'FP32'"),
    ("unknown datatype", "embed", {"inputs": [text_tensor(datatype="STRING")]}, 400, "datatype BYTES"),
    ("shape and data disagree", "embed", {"inputs": [text_tensor(shape=[3])]}, 400,
     "shape [3] needs 3 elements but its data holds 1"),
    ("shape with two columns", "embed", {"inputs": [text_tensor(shape=[1, 2], data=["a", "b"])]}, 400,
     "must have shape [N] or [N, 1], got [1, 2]"),
    ("missing text input", "embed", {"inputs": []}, 400, "missing input 'text'"),
    ("unknown input", "embed", {"inputs": [text_tensor(name="query")]}, 400, "unknown input 'query'"),
    ("text given twice", "embed", {"inputs": [text_tensor(), text_tensor()]}, 400, "input 'text' is given 2 times"),
    ("no data", "embed", {"inputs": [text_tensor(data=None)]}, 400, "neither 'data' nor parameters.binary_data_size"),
    ("number in BYTES data", "embed", {"inputs": [text_tensor(data=[5])]}, 400,
     "BYTES element 0 must be a string, got int"),
    ("unknown output", "embed", {"inputs": [text_tensor()], "outputs": [{"name": "vector"}]}, 400,
     "unknown output 'vector'; model 'embed' gives: embedding"),
    ("classification extension", "classify",
     {"inputs": [text_tensor()], "outputs": [{"name": "probabilities", "parameters": {"classification": 1}}]}, 400,
     "classification extension is not supported"),
    ("empty text", "embed", {"inputs": [text_tensor(data=["  "])]}, 400, "'text' is empty"),
    ("second text empty", "embed", {"inputs": [text_tensor(shape=[2], data=["red", ""])]}, 400, "'text[1]' is empty"),
    ("top_k too large", "fill", {"inputs": [text_tensor(data=["red [MASK]"])], "parameters": {"top_k": 51}}, 400,
     "parameter 'top_k': Input should be less than or equal to 50"),
    ("top_k zero", "fill", {"inputs": [text_tensor(data=["red [MASK]"])], "parameters": {"top_k": 0}}, 400,
     "parameter 'top_k': Input should be greater than or equal to 1"),
    ("no mask token", "fill", {"inputs": [text_tensor()]}, 400, "must contain the mask token '[MASK]'"),
    ("temperature too high", "gen", {"inputs": [text_tensor()], "parameters": {"temperature": 3}}, 400,
     "parameter 'temperature': Input should be less than or equal to 2"),
    ("max_tokens over the limit", "gen", {"inputs": [text_tensor()], "parameters": {"max_tokens": 65}}, 400,
     "'max_tokens' is 65; the limit is 64"),
    ("empty stop", "gen", {"inputs": [text_tensor()], "parameters": {"stop": ""}}, 400,
     "stop sequences must not be empty"),
    ("empty prompt", "gen", {"inputs": [text_tensor(data=[""])]}, 400, "input 'text[0]' is empty"),
    ("no prompts", "gen", {"inputs": [text_tensor(shape=[0], data=[])]}, 400,
     "input 'text' must hold at least one text"),
    ("no texts", "classify", {"inputs": [text_tensor(shape=[0, 1], data=[])]}, 400,
     "input 'text' must hold at least one text"),
    ("binary_data_output not a flag", "embed", {"inputs": [text_tensor()], "parameters": {"binary_data_output": "yes"}},
     400, "parameters.binary_data_output must be true or false"),
    ("negative dimension", "embed", {"inputs": [text_tensor(shape=[-1])]}, 400,
     "inputs.0.shape.0: Input should be greater than or equal to 0"),
]


@pytest.mark.parametrize(("model", "body", "status", "message"), [case[1:] for case in BAD_REQUESTS],
                         ids=[case[0] for case in BAD_REQUESTS])
def test_bad_json_requests_are_rejected(
    http: httpx.Client, model: str, body: dict[str, Any], status: int, message: str
) -> None:
    response = http.post(f"/v2/models/{model}/infer", json=body)

    assert response.status_code == status
    assert message in response.json()["error"]
    assert http.get("/v2/health/ready").status_code == 200


def test_unknown_version_is_404(http: httpx.Client) -> None:
    response = http.post("/v2/models/embed/versions/9/infer", json=json_body(["red shoes"]))

    assert response.status_code == 404
    assert "model 'embed' has no version '9' loaded; loaded version: 1" in response.json()["error"]


def test_unknown_model_metadata_is_404(client: triton_http.InferenceServerClient) -> None:
    with pytest.raises(InferenceServerException) as raised:
        client.get_model_metadata("nope")

    assert raised.value.status() == "404"
    assert "'nope' does not exist" in raised.value.message()


def test_malformed_json_is_400(http: httpx.Client) -> None:
    response = http.post("/v2/models/embed/infer", content=b'{"inputs": [',
                         headers={"content-type": "application/json"})

    assert response.status_code == 400
    assert response.json()["error"].startswith("body is not valid JSON")


def test_invalid_utf8_in_binary_bytes_is_400(http: httpx.Client) -> None:
    raw = serialize_bytes([b"ok", b"caf\xe9"])
    header = json.dumps({"inputs": [{"name": "text", "shape": [2], "datatype": "BYTES",
                                     "parameters": {"binary_data_size": len(raw)}}]}).encode()

    response = http.post("/v2/models/embed/infer", content=header + raw,
                         headers={"Inference-Header-Content-Length": str(len(header))})

    assert response.status_code == 400
    assert "input 'text[1]' is not valid UTF-8" in response.json()["error"]


def test_invalid_utf8_from_tritonclient_is_rejected(client: triton_http.InferenceServerClient) -> None:
    tensor = triton_http.InferInput("text", [1], "BYTES")
    tensor.set_data_from_numpy(np.array([b"\xff\xfe"], dtype=object))

    with pytest.raises(InferenceServerException) as raised:
        client.infer("embed", [tensor])

    assert raised.value.status() == "400"
    assert "not valid UTF-8" in raised.value.message()


def test_header_length_larger_than_body_is_400(http: httpx.Client) -> None:
    body = json.dumps(json_body(["red shoes"])).encode()

    response = http.post("/v2/models/embed/infer", content=body,
                         headers={"Inference-Header-Content-Length": str(len(body) + 10)})

    assert response.status_code == 400
    assert response.json()["error"] == (
        f"Inference-Header-Content-Length is {len(body) + 10} but the body holds only {len(body)} bytes"
    )


@pytest.mark.parametrize(
    ("binary", "declared", "message"),
    [
        (serialize_bytes([b"red"]), 100, "binary_data_size is 100 but only 7 bytes of binary data remain"),
        (serialize_bytes([b"red"]) + b"xx", 7, "the body holds 2 bytes after the binary data the inputs declare"),
        (serialize_bytes([b"red", b"blue"]), 15, "shape [1] needs 1 elements but its binary data holds more than 1"),
        (struct.pack("<I", 50) + b"red", 7, "BYTES element 0 declares 50 bytes but only 3 remain"),
    ],
    ids=["size past the end", "trailing bytes", "too many elements", "element past the end"],
)
def test_bad_binary_sections_are_400(http: httpx.Client, binary: bytes, declared: int, message: str) -> None:
    header = json.dumps({"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES",
                                     "parameters": {"binary_data_size": declared}}]}).encode()

    response = http.post("/v2/models/embed/infer", content=header + binary,
                         headers={"Inference-Header-Content-Length": str(len(header))})

    assert response.status_code == 400
    assert message in response.json()["error"]


def test_corrupt_gzip_body_is_400(http: httpx.Client) -> None:
    compressed = gzip.compress(json.dumps(json_body(["red shoes"])).encode())[:-6]

    response = http.post("/v2/models/embed/infer", content=compressed, headers={"Content-Encoding": "gzip"})

    assert response.status_code == 400
    assert "gzip" in response.json()["error"]


def test_server_still_healthy_after_bad_requests(client: triton_http.InferenceServerClient) -> None:
    assert client.is_server_live() is True
    assert client.is_server_ready() is True
    assert client.infer("embed", [text_input(["still works"])]).as_numpy("embedding").shape[0] == 1


# --- API keys ---------------------------------------------------------------------------


def test_health_routes_are_public_and_the_rest_need_a_key(keyed_server: ServerProcess) -> None:
    with httpx.Client(base_url=keyed_server.http_url, timeout=30) as http:
        public_paths = ("/v2/health/live", "/v2/health/ready", "/v2/models/embed/ready",
                        "/v2/models/embed/versions/1/ready")
        public = [http.get(path).status_code for path in public_paths]
        anonymous = [http.get("/v2").status_code, http.get("/v2/models/embed").status_code,
                     http.post("/v2/models/embed/infer", json=json_body(["red shoes"])).status_code]
        wrong_key = http.post("/v2/models/embed/infer", json=json_body(["red shoes"]),
                              headers={"Authorization": "Bearer wrong"})

    assert public == [200, 200, 200, 200]
    assert anonymous == [401, 401, 401]
    assert wrong_key.status_code == 401
    assert "API key" in wrong_key.json()["error"]


def test_tritonclient_with_a_key_is_served(keyed_server: ServerProcess) -> None:
    triton = triton_http.InferenceServerClient(keyed_server.http_address)
    headers = {"Authorization": f"Bearer {API_KEY}"}

    result = triton.infer("embed", [text_input(["red shoes"])], headers=headers)

    assert result.as_numpy("embedding").shape[0] == 1
    assert triton.get_model_metadata("embed", headers=headers)["name"] == "embed"
    triton.close()


def test_unloaded_model_is_not_ready_but_the_server_is(keyed_server: ServerProcess) -> None:
    with httpx.Client(base_url=keyed_server.http_url, timeout=30,
                      headers={"Authorization": f"Bearer {API_KEY}"}) as http:
        server_ready = http.get("/v2/health/ready")
        model_ready = http.get("/v2/models/idle/ready")
        metadata = http.get("/v2/models/idle")
        inference = http.post("/v2/models/idle/infer", json=json_body(["red shoes"]))

    assert server_ready.status_code == 200
    assert (model_ready.status_code, model_ready.json()) == (503, {"error": "model 'idle' is unloaded"})
    assert metadata.status_code == 503
    assert (inference.status_code, inference.json()) == (503, {"error": "model 'idle' is unloaded"})


def test_full_queue_is_429_with_retry_after(keyed_server: ServerProcess) -> None:
    response = httpx.post(f"{keyed_server.http_url}/v2/models/tight/infer", json=json_body(["red", "blue"]),
                          headers={"Authorization": f"Bearer {API_KEY}"}, timeout=30)

    assert response.status_code == 429
    assert "queue is full (max_queue_size=1)" in response.json()["error"]
    assert int(response.headers["retry-after"]) >= 1


def test_openapi_documents_the_infer_body(http: httpx.Client) -> None:
    # The infer routes read their raw body, so the schema is declared by hand; /docs shows it.
    paths = http.get("/openapi.json").json()["paths"]

    for path in ("/v2/models/{model_name}/infer", "/v2/models/{model_name}/versions/{model_version}/infer"):
        operation = paths[path]["post"]
        body = operation["requestBody"]["content"]["application/json"]["schema"]
        assert body["required"] == ["inputs"]
        assert set(body["properties"]["inputs"]["items"]["required"]) == {"name", "shape", "datatype"}
        assert "application/octet-stream" in operation["requestBody"]["content"]
        reply = operation["responses"]["200"]["content"]["application/json"]["schema"]
        assert {"model_name", "outputs"} <= set(reply["required"])
