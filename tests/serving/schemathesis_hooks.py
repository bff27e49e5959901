"""Schemathesis hooks for ``test_generated_requests.py``: aim most requests at the served models.

Generated model names almost never exist, and generated tensors almost never match a model's
input, so without this nearly every request would stop at a 404 or at the first check. The other
fields stay as generated: boundary values, wrong types, missing and extra fields.
"""

from __future__ import annotations

import random
from typing import Any

import schemathesis

MODEL_FOR_ROUTE = {"/v1/embeddings": "embed", "/v1/chat/completions": "gen", "/v1/completions": "gen"}
SERVED = ("embed", "classify", "fill", "gen")


@schemathesis.hook
def before_call(context: Any, case: schemathesis.Case, **kwargs: Any) -> None:
    chooser = random.Random(repr(case.body) + repr(case.path_parameters))
    for parameter in ("model_name", "name"):  # the inference routes' and the admin routes' model
        if case.path_parameters and parameter in case.path_parameters and chooser.random() < 0.8:
            case.path_parameters[parameter] = chooser.choice(SERVED)
        if "model_version" in case.path_parameters and chooser.random() < 0.5:
            case.path_parameters["model_version"] = "1"
    if not isinstance(case.body, dict):
        return
    if case.operation.path in MODEL_FOR_ROUTE and chooser.random() < 0.8:
        case.body["model"] = MODEL_FOR_ROUTE[case.operation.path]
    for field in ("max_tokens", "max_completion_tokens"):  # within the tiny model's limit of 64
        if isinstance(case.body.get(field), int) and case.body[field] > 8:
            case.body[field] = 8
    if case.operation.path.endswith("/infer") and chooser.random() < 0.5:
        texts = [chooser.choice(["red shoes", "a [MASK] bag", "", " ", "好评"]) for _ in range(chooser.randint(0, 2))]
        case.body["inputs"] = [{"name": "text", "datatype": "BYTES", "shape": [len(texts)], "data": texts}]
