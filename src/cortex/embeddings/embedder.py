"""Text embeddings, computed in batches off the event loop, normalised for cosine similarity."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from cortex.embeddings.errors import EmbeddingBadAnswer, classify
from cortex.embeddings.models import DEFAULT_EMBEDDING_MODEL, EmbeddingModelSpec, resolve_model

logger = logging.getLogger(__name__)

BATCH_SIZE = 64
# One remote embedding call (a batch of BATCH_SIZE texts) gives up after this long.
REMOTE_TIMEOUT_SECONDS = 60.0
# Up to this many texts are embedded on one torch thread (see _threads_for).
SINGLE_THREAD_TEXTS = 8
_QUERY_CACHE_SIZE = 4096


@contextmanager
def _threads_for(texts: int) -> Iterator[None]:
    """A few short texts (customer messages) are one small forward pass: torch's intra-op threads hand
    it off for little gain, and when the cores are busy with other work they wait for each other. On
    two shared cores, a one-question MiniLM embedding measured p50 301 ms with two threads and 11 ms
    with one. Batches (ingestion, FAQ sets) keep every thread."""
    import torch

    if texts > SINGLE_THREAD_TEXTS:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class Embedder:
    """One per process. Local models run in a single worker thread (torch uses its own threads
    inside), so an embedding never blocks the event loop and models load once."""

    def __init__(self, *, bge_m3_path: Path | None = None, litellm_api_base: str | None = None,
                 litellm_api_key: str | None = None,
                 litellm_timeout_seconds: float = REMOTE_TIMEOUT_SECONDS) -> None:
        self._bge_m3_path = bge_m3_path
        self._timeout_seconds = litellm_timeout_seconds
        self._api_base = litellm_api_base
        self._api_key = litellm_api_key
        self._models: dict[str, Any] = {}
        self._load_lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cortex-embed")
        # Short texts (customer messages) are embedded by several services per request.
        self._query_cache: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
        # Queries waiting for the embedding thread, by model: concurrent requests' messages are embedded
        # together in one batch (one forward pass for many short texts costs little more than for one),
        # and a text asked for twice at once is embedded once.
        self._waiting: dict[str, dict[str, asyncio.Future[np.ndarray]]] = {}
        self._drains: dict[str, asyncio.Task[None]] = {}

    def spec(self, model: str = DEFAULT_EMBEDDING_MODEL) -> EmbeddingModelSpec:
        return resolve_model(model, bge_m3_path=self._bge_m3_path)

    def dimensions(self, model: str = DEFAULT_EMBEDDING_MODEL) -> int:
        return self.spec(model).dimensions

    def _local_model(self, spec: EmbeddingModelSpec) -> Any:
        with self._load_lock:
            if spec.name not in self._models:
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                from sentence_transformers import SentenceTransformer

                self._models[spec.name] = SentenceTransformer(spec.target, device="cpu", local_files_only=True)
            return self._models[spec.name]

    def embed_sync(self, texts: list[str], model: str = DEFAULT_EMBEDDING_MODEL) -> np.ndarray:
        """Blocking; for threads, benchmarks and the CLI. Returns float32 [n, dims], unit length."""
        spec = self.spec(model)
        if not texts:
            return np.zeros((0, spec.dimensions), dtype=np.float32)
        if spec.backend == "sentence-transformers":
            encoder = self._local_model(spec)
            with _threads_for(len(texts)):
                vectors = encoder.encode(texts, batch_size=BATCH_SIZE, normalize_embeddings=True,
                                       convert_to_numpy=True, show_progress_bar=False)
        else:
            vectors = np.concatenate([self._remote_batch(spec, texts[start:start + BATCH_SIZE])
                                      for start in range(0, len(texts), BATCH_SIZE)])
            vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.shape[1] != spec.dimensions:
            raise ValueError(f"{spec.name} returned {vectors.shape[1]} dimensions, expected {spec.dimensions}")
        return vectors

    def _remote_batch(self, spec: EmbeddingModelSpec, texts: list[str]) -> np.ndarray:
        """One LiteLLM call → float32 [len(texts), dims]; EmbeddingFailed when the provider fails or
        answers anything but that many vectors of the model's size."""
        import litellm

        try:
            response = litellm.embedding(model=spec.target, input=texts, api_base=self._api_base,
                                         api_key=self._api_key, timeout=self._timeout_seconds)
        except Exception as exc:  # LiteLLM raises many types; classify() reads what they mean
            failure = classify(spec.name, exc)
            # The provider's message may be long or odd; the log keeps its type, the answer the phrase.
            logger.warning("embedding call failed", extra={"model": spec.name, "reason": failure.reason,
                                                           "error_type": type(exc).__name__})
            raise failure from exc
        data = getattr(response, "data", None)
        try:
            if not isinstance(data, list) or len(data) != len(texts):
                raise ValueError(f"{len(data) if isinstance(data, list) else 'no'} items for {len(texts)} texts")
            rows = [item["embedding"] if isinstance(item, dict) else item.embedding for item in data]
            vectors = np.asarray(rows, dtype=np.float32)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            logger.warning("embedding answer malformed", extra={"model": spec.name, "error": str(exc)[:200]})
            raise EmbeddingBadAnswer(spec.name, "answered malformed embeddings") from exc
        if vectors.shape != (len(texts), spec.dimensions):
            raise EmbeddingBadAnswer(spec.name, f"answered vectors of shape {vectors.shape}, expected "
                                                f"({len(texts)}, {spec.dimensions})")
        if not np.isfinite(vectors).all():
            raise EmbeddingBadAnswer(spec.name, "answered non-finite numbers")
        return vectors

    async def embed(self, texts: list[str], model: str = DEFAULT_EMBEDDING_MODEL) -> np.ndarray:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self.embed_sync, texts, model)

    async def embed_query(self, text: str, model: str = DEFAULT_EMBEDDING_MODEL) -> np.ndarray:
        """One short text, memoised: the cache check, memory recall and retrieval share it."""
        key = (model, text)
        cached = self._query_cache.get(key)
        if cached is not None:
            self._query_cache.move_to_end(key)
            return cached
        waiting = self._waiting.setdefault(model, {})
        future = waiting.get(text)
        if future is None:
            future = asyncio.get_running_loop().create_future()
            waiting[text] = future
            if model not in self._drains:
                self._drains[model] = asyncio.create_task(self._drain(model), name=f"embed-queries:{model}")
        # Shielded: one caller giving up must not cancel the batch the others wait on.
        return await asyncio.shield(future)

    async def _drain(self, model: str) -> None:
        """Embed what waits, in batches, until nothing does; a batch gathers what arrived meanwhile."""
        batch: dict[str, asyncio.Future[np.ndarray]] = {}
        try:
            while batch := self._waiting.pop(model, {}):
                texts = list(batch)
                try:
                    vectors = await self.embed(texts, model)
                except Exception as exc:
                    for future in batch.values():
                        if not future.done():
                            future.set_exception(exc)
                            future.exception()  # retrieved: each waiter raises it; no "never retrieved" log
                    continue
                for text, vector in zip(texts, vectors, strict=True):
                    self._query_cache[(model, text)] = vector
                    if not batch[text].done():
                        batch[text].set_result(vector)
                while len(self._query_cache) > _QUERY_CACHE_SIZE:
                    self._query_cache.popitem(last=False)
        finally:
            del self._drains[model]
            # Cancelled (shutdown): nobody will embed what is left.
            for future in [*batch.values(), *self._waiting.pop(model, {}).values()]:
                if not future.done():
                    future.cancel()

    async def warm_up(self, model: str = DEFAULT_EMBEDDING_MODEL) -> None:
        await self.embed(["warm up"], model)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
