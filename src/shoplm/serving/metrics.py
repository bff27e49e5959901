"""Prometheus metrics of the model server, kept in one registry per server process."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
BATCH_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 128, 256)


class ServerMetrics:
    """Every metric the server exports; engines and routes record into it."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "shoplm_requests", "Requests answered.", ["model", "version", "route", "status"], registry=r
        )
        self.request_latency = Histogram(
            "shoplm_request_latency_seconds",
            "End-to-end request latency.",
            ["model", "route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.queue_time = Histogram(
            "shoplm_queue_time_seconds", "Time an input waited before its batch ran.",
            ["model", "version"], buckets=LATENCY_BUCKETS, registry=r,
        )
        self.compute_time = Histogram(
            "shoplm_compute_time_seconds", "Time of one forward pass (one batch or decode step).",
            ["model", "version"], buckets=LATENCY_BUCKETS, registry=r,
        )
        self.batch_size = Histogram(
            "shoplm_batch_size", "Inputs (or sequences) per forward pass.",
            ["model", "version"], buckets=BATCH_BUCKETS, registry=r,
        )
        self.time_to_first_token = Histogram(
            "shoplm_time_to_first_token_seconds", "From arrival to the first generated token.",
            ["model", "version"], buckets=LATENCY_BUCKETS, registry=r,
        )
        self.inter_token_latency = Histogram(
            "shoplm_inter_token_latency_seconds", "Time between consecutive generated tokens.",
            ["model", "version"], buckets=LATENCY_BUCKETS, registry=r,
        )
        self.queue_depth = Gauge(
            "shoplm_queue_depth", "Inputs waiting for a batch.", ["model"], registry=r
        )
        self.running_sequences = Gauge(
            "shoplm_running_sequences", "Sequences being decoded.", ["model"], registry=r
        )
        self.prompt_tokens = Counter(
            "shoplm_prompt_tokens", "Prompt/input tokens processed.", ["model", "version"], registry=r
        )
        self.generation_tokens = Counter(
            "shoplm_generation_tokens", "Tokens generated.", ["model", "version"], registry=r
        )
        self.model_events = Counter(
            "shoplm_model_events", "Model load, unload and failure events.",
            ["model", "version", "event"], registry=r,
        )
        self.model_load_time = Histogram(
            "shoplm_model_load_seconds", "Time to load and warm a model.", ["model"],
            buckets=(0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300), registry=r,
        )
        self.model_memory = Gauge(
            "shoplm_model_memory_bytes", "Bytes of parameters and buffers of a loaded model.",
            ["model", "version"], registry=r,
        )
