"""Prometheus metrics at `GET /metrics` (beyond Ollama: ollama/ollama#3144), off with
OLLAMA_METRICS=0.

    pollama_http_requests_total{route,method,status}      every request, by matched route
    pollama_prompt_tokens_total{model}                    prompt tokens of finished answers
    pollama_prompt_cached_tokens_total{model}             those served from the KV prefix cache
    pollama_prefix_cache_hits_total{model}                answers that reused a cached prefix
    pollama_generated_tokens_total{model}                 tokens generated
    pollama_generations_total{model,reason}               answers by done_reason
    pollama_time_to_first_token_seconds{model}            request → first text (load included)
    pollama_time_per_output_token_seconds{model}          eval time / tokens, once per answer
    pollama_pull_bytes_total                              bytes pulls downloaded
    pollama_queue_depth                                   requests waiting for a model or room
    pollama_loaded_models                                 runners loaded
    pollama_model_memory_bytes{model}                     memory of each loaded model
    pollama_model_requests_in_flight{model}               requests each loaded model serves now

Each app has its own registry, so several servers in one process (tests) never share counts.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

from fastapi.responses import Response
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pollama.inference.observer import InferenceObserver
from pollama.inference.service import Inference

_TTFT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_TPOT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


class _LoadedModels(Collector):
    """Read at scrape time from the scheduler: the queue and what is loaded."""

    def __init__(self, inference: Inference) -> None:
        self.inference = inference

    def collect(self) -> Iterator[Metric]:
        scheduler = self.inference.scheduler
        queue = GaugeMetricFamily("pollama_queue_depth",
                                  "Requests waiting for a model to load or for room")
        queue.add_metric([], scheduler.pending)
        running = scheduler.running()
        loaded = GaugeMetricFamily("pollama_loaded_models", "Models loaded in runners")
        loaded.add_metric([], len(running))
        memory = GaugeMetricFamily("pollama_model_memory_bytes",
                                   "Memory of each loaded model (weights and KV cache)",
                                   labels=["model"])
        in_flight = GaugeMetricFamily("pollama_model_requests_in_flight",
                                      "Requests each loaded model is serving", labels=["model"])
        for runner in running:
            memory.add_metric([runner.name], runner.memory)
            in_flight.add_metric([runner.name], runner.refcount)
        yield from (queue, loaded, memory, in_flight)


class Metrics(InferenceObserver):
    """The server's metrics: an HTTP middleware, the inference observer, pull progress."""

    def __init__(self, inference: Inference) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("pollama_http_requests", "HTTP requests by route and status",
                                ["route", "method", "status"], registry=r)
        self.prompt_tokens = Counter("pollama_prompt_tokens", "Prompt tokens of answers",
                                     ["model"], registry=r)
        self.cached_tokens = Counter("pollama_prompt_cached_tokens",
                                     "Prompt tokens served from the KV prefix cache", ["model"],
                                     registry=r)
        self.prefix_hits = Counter("pollama_prefix_cache_hits",
                                   "Answers that reused a cached prompt prefix", ["model"],
                                   registry=r)
        self.generated_tokens = Counter("pollama_generated_tokens", "Tokens generated",
                                        ["model"], registry=r)
        self.generations = Counter("pollama_generations", "Answers finished, by done_reason",
                                   ["model", "reason"], registry=r)
        self.ttft = Histogram("pollama_time_to_first_token_seconds",
                              "Time from a request to its first text (model load included)",
                              ["model"], buckets=_TTFT_BUCKETS, registry=r)
        self.tpot = Histogram("pollama_time_per_output_token_seconds",
                              "Generation time per output token, once per answer", ["model"],
                              buckets=_TPOT_BUCKETS, registry=r)
        self.pull_bytes = Counter("pollama_pull_bytes", "Bytes downloaded by pulls", registry=r)
        r.register(_LoadedModels(inference))

    # -- the inference observer ------------------------------------------------------------

    def first_token(self, model: str, seconds: float) -> None:
        self.ttft.labels(model).observe(seconds)

    def finished(self, model: str, done: dict[str, Any]) -> None:
        prompt = int(done.get("prompt_eval_count") or 0)
        cached = int(done.get("prompt_cached") or 0)
        generated = int(done.get("eval_count") or 0)
        self.prompt_tokens.labels(model).inc(prompt)
        self.cached_tokens.labels(model).inc(cached)
        if cached:
            self.prefix_hits.labels(model).inc()
        self.generated_tokens.labels(model).inc(generated)
        self.generations.labels(model, str(done.get("done_reason") or "stop")).inc()
        if generated:
            self.tpot.labels(model).observe(int(done.get("eval_duration") or 0) / 1e9 / generated)

    # -- pulls -------------------------------------------------------------------------------

    def pull_progress(self) -> Callable[[dict[str, Any]], None]:
        """A progress listener for one pull: counts the bytes each layer's `completed` grew."""
        seen: dict[str, int] = {}
        lock = threading.Lock()  # downloads report from worker threads

        def listen(event: dict[str, Any]) -> None:
            digest, completed = event.get("digest"), event.get("completed")
            if isinstance(digest, str) and isinstance(completed, int):
                with lock:
                    grown = completed - seen.get(digest, 0)
                    if grown > 0:
                        seen[digest] = completed
                if grown > 0:
                    self.pull_bytes.inc(grown)

        return listen

    def exposition(self) -> Response:
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)


class RequestCounter:
    """ASGI middleware counting every HTTP request by the route it matched and its status."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500  # what the client sees when the app fails before answering

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            self.metrics.requests.labels(route, scope["method"], str(status)).inc()
