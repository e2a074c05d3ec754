"""Prometheus metrics: one registry per running service, multiprocess-safe under several workers.

With `PROMETHEUS_MULTIPROC_DIR` set (the `cortex serve --workers N` command sets it), every worker
writes its values to files in that folder and a scrape of any worker adds them all up. Labels are
bounded: agent ids, tiers, models, steps, route templates, statuses and outcomes; never customer ids
or message text.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

# Milliseconds: from a cached answer (a few ms) to a slow model with tool rounds (a minute).
_MS_BUCKETS = (1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000, 60_000)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.multiprocess_dir = os.environ.get(MULTIPROC_ENV) or None
        r = self.registry
        self.http_requests = Counter("cortex_http_requests", "HTTP requests by route template and status",
                                     ["method", "route", "status"], registry=r)
        self.http_duration = Histogram("cortex_http_request_duration_ms", "HTTP request duration (ms)",
                                       ["method", "route"], buckets=_MS_BUCKETS, registry=r)
        self.rate_limited = Counter("cortex_rate_limited_requests", "Requests refused with 429, by limit",
                                    ["limit"], registry=r)
        self.chat_requests = Counter("cortex_chat_requests", "Chat requests by outcome",
                                     ["agent_id", "outcome"], registry=r)
        self.pipeline_duration = Histogram("cortex_pipeline_duration_ms", "Whole chat pipeline duration (ms)",
                                           ["tier"], buckets=_MS_BUCKETS, registry=r)
        self.step_duration = Histogram("cortex_step_duration_ms", "Duration of one pipeline step (ms)",
                                       ["step"], buckets=_MS_BUCKETS, registry=r)
        self.config_cache_hits = Counter("cortex_config_cache_hits", "Agent config loads served by the cache",
                                         ["agent_id"], registry=r)
        self.config_cache_misses = Counter("cortex_config_cache_misses", "Agent config loads from the database",
                                           ["agent_id"], registry=r)
        self.semantic_cache_hits = Counter("cortex_semantic_cache_hits", "Chats answered by the semantic cache",
                                           ["agent_id"], registry=r)
        self.semantic_cache_misses = Counter("cortex_semantic_cache_misses",
                                             "Semantic cache lookups that found nothing", ["agent_id"], registry=r)
        self.llm_calls = Counter("cortex_llm_calls", "Model calls by model, tier and outcome",
                                 ["model", "tier", "outcome"], registry=r)
        self.llm_tokens = Counter("cortex_llm_tokens", "Model tokens by model, tier and direction",
                                  ["model", "tier", "direction"], registry=r)
        self.llm_cost = Counter("cortex_llm_cost_usd", "Model cost in USD by model and tier",
                                ["model", "tier"], registry=r)
        self.llm_duration = Histogram("cortex_llm_call_duration_ms", "One model call's duration (ms)",
                                      ["model", "tier"], buckets=_MS_BUCKETS, registry=r)
        self.tool_calls = Counter("cortex_tool_calls", "Tool (webhook) calls by action and outcome",
                                  ["action", "outcome"], registry=r)
        self.tool_duration = Histogram("cortex_tool_call_duration_ms", "One tool call's duration (ms)",
                                       ["action"], buckets=_MS_BUCKETS, registry=r)
        self.ingestion_chunks = Counter("cortex_ingestion_chunks", "Knowledge chunks embedded and stored",
                                        ["embedding_model"], registry=r)
        # Customer memory extraction (after each reply): one run per turn, by how it ended, and what
        # happened to the facts it returned. Both label sets are fixed lists (cortex.memory.component).
        self.memory_extraction_runs = Counter("cortex_memory_extraction_runs", "Memory extraction runs by outcome",
                                              ["outcome"], registry=r)
        self.memory_facts = Counter("cortex_memory_facts", "Extracted facts by what storing them did",
                                    ["action"], registry=r)

        # Webhook delivery attempts (the job worker's), by how the receiver answered: a fixed list.
        self.webhook_attempts = Counter("cortex_webhook_attempts", "Webhook delivery attempts by outcome",
                                        ["outcome"], registry=r)

    def record_webhook_attempt(self, succeeded: bool, status_code: int | None) -> None:
        """`delivered` (2xx), `http_error` (any other answer) or `network_error` (no answer)."""
        outcome = "delivered" if succeeded else ("http_error" if status_code is not None else "network_error")
        self.webhook_attempts.labels(outcome=outcome).inc()

    def record_ingested_chunks(self, count: int, embedding_model: str) -> None:
        """Called by knowledge ingestion once a source's chunks are stored."""
        if count > 0:
            self.ingestion_chunks.labels(embedding_model=embedding_model).inc(count)

    def collectors(self) -> Iterable[Metric]:
        """Every family of this process, or of all worker processes in multiprocess mode."""
        if self.multiprocess_dir:
            merged = CollectorRegistry()
            MultiProcessCollector(merged, path=self.multiprocess_dir)
            return merged.collect()
        return self.registry.collect()

    def render(self, keep_agent_ids: set[str] | None = None) -> bytes:
        """The Prometheus text format; with `keep_agent_ids`, samples of other agents are left out."""
        return generate_latest(_Filtered(self, keep_agent_ids))


class _Filtered(Collector):
    """A collector view that drops samples labelled with an agent outside `keep` (another company's)."""

    def __init__(self, metrics: Metrics, keep: set[str] | None) -> None:
        self.metrics, self.keep = metrics, keep

    def collect(self) -> Iterator[Metric]:
        for family in self.metrics.collectors():
            if self.keep is not None:
                family.samples = [s for s in family.samples
                                  if "agent_id" not in s.labels or s.labels["agent_id"] in self.keep]
            yield family
