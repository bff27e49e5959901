"""The serving baseline: the same models behind a plain FastAPI app, one request at a time.

What a first prototype looks like: ``transformers.pipeline`` for embeddings and
classification, ``model.generate`` (with a streamer for server-sent events) for chat, a lock
around the model, no batching. It speaks the small subset of the OpenAI and KServe v2 routes
that ``serve_bench.py`` sends, so both servers see byte-for-byte the same workload.

    python benchmarks/baseline_server.py --port 8200 --embed DIR --classify DIR --chat DIR
"""

from __future__ import annotations

import argparse
import asyncio
import json
import threading
from collections.abc import AsyncIterator
from typing import Any

import torch
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse
from transformers import AutoModelForCausalLM, AutoTokenizer, TextIteratorStreamer, pipeline


def create_app(embed_dir: str | None, classify_dir: str | None, chat_dir: str | None) -> FastAPI:
    app = FastAPI()
    lock = threading.Lock()  # one request at a time on the model, as a naive server does
    extractor = pipeline("feature-extraction", model=embed_dir) if embed_dir else None
    classifier = pipeline("text-classification", model=classify_dir, top_k=None) if classify_dir else None
    chat_tokenizer = AutoTokenizer.from_pretrained(chat_dir) if chat_dir else None
    chat_model = AutoModelForCausalLM.from_pretrained(chat_dir).eval() if chat_dir else None

    def embed(texts: list[str]) -> list[list[float]]:
        assert extractor is not None
        vectors = []
        with lock, torch.inference_mode():
            for text in texts:
                hidden = torch.tensor(extractor(text)[0])
                vectors.append(torch.nn.functional.normalize(hidden.mean(dim=0), dim=0).tolist())
        return vectors

    @app.post("/v1/embeddings")
    async def embeddings(request: Request) -> dict[str, Any]:
        body = await request.json()
        texts = [body["input"]] if isinstance(body["input"], str) else body["input"]
        vectors = await asyncio.to_thread(embed, texts)
        return {"object": "list", "data": [{"index": i, "embedding": v} for i, v in enumerate(vectors)]}

    def classify(texts: list[str]) -> list[list[dict[str, Any]]]:
        assert classifier is not None
        with lock, torch.inference_mode():
            return [classifier(text)[0] for text in texts]

    @app.post("/v2/models/{name}/infer")
    async def infer(name: str, request: Request) -> dict[str, Any]:
        body = await request.json()
        texts = body["inputs"][0]["data"]
        results = await asyncio.to_thread(classify, texts)
        assert classifier is not None
        order = classifier.model.config.label2id
        labels = [max(r, key=lambda item: item["score"])["label"] for r in results]
        probabilities = [0.0] * (len(results) * len(order))
        for row, scores in enumerate(results):
            for item in scores:
                probabilities[row * len(order) + order[item["label"]]] = item["score"]
        return {"model_name": name, "outputs": [
            {"name": "probabilities", "datatype": "FP32", "shape": [len(results), len(order)], "data": probabilities},
            {"name": "label", "datatype": "BYTES", "shape": [len(labels)], "data": labels},
        ]}

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> StreamingResponse:
        assert chat_tokenizer is not None and chat_model is not None
        body = await request.json()
        ids = chat_tokenizer.apply_chat_template(body["messages"], add_generation_prompt=True, return_tensors="pt")
        ids = ids if isinstance(ids, torch.Tensor) else ids["input_ids"]
        streamer = TextIteratorStreamer(chat_tokenizer, skip_prompt=True, skip_special_tokens=True)
        settings = {"max_new_tokens": body.get("max_tokens", 64), "do_sample": False, "streamer": streamer}

        def run() -> None:
            with lock, torch.inference_mode():
                chat_model.generate(ids, attention_mask=torch.ones_like(ids), **settings)

        threading.Thread(target=run, daemon=True).start()

        async def events() -> AsyncIterator[str]:
            iterator = iter(streamer)
            while True:
                text = await asyncio.to_thread(next, iterator, None)
                if text is None:
                    break
                if text:
                    chunk = {"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]}
                    yield f"data: {json.dumps(chunk)}\n\n"
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    @app.get("/v2/health/ready")
    async def ready() -> dict[str, bool]:
        return {"ready": True}

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8200)
    parser.add_argument("--embed")
    parser.add_argument("--classify")
    parser.add_argument("--chat")
    args = parser.parse_args()
    uvicorn.run(create_app(args.embed, args.classify, args.chat), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
