"""embed_query batches concurrent requests' texts into one forward pass, with the same vectors."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest

from cortex.embeddings.embedder import Embedder


@pytest.fixture(scope="module")
def embedder() -> Any:
    embedder = Embedder()
    embedder.embed_sync(["warm up"])
    yield embedder
    embedder.close()


async def test_concurrent_queries_share_batches_and_match_single_embeddings(embedder: Embedder) -> None:
    texts = [f"How do I reset the PIN of card number {i}?" for i in range(12)]
    batches: list[list[str]] = []
    original = embedder.embed_sync

    def counting(batch: list[str], model: str = "minilm") -> np.ndarray:
        batches.append(list(batch))
        return original(batch, model)

    embedder.embed_sync = counting  # type: ignore[method-assign]
    try:
        # The same text asked twice at once is embedded once.
        vectors = await asyncio.gather(*(embedder.embed_query(t) for t in [*texts, texts[0]]))
    finally:
        del embedder.embed_sync
    assert sorted(t for batch in batches for t in batch) == sorted(texts)
    assert len(batches) < len(texts)  # the first alone, the rest gathered while it ran
    for text, vector in zip([*texts, texts[0]], vectors, strict=True):
        assert np.allclose(vector, original([text])[0], atol=1e-5)
    assert await embedder.embed_query(texts[3]) is vectors[3]  # memoised afterwards


async def test_a_failed_batch_fails_its_waiters_and_the_next_query_works(embedder: Embedder) -> None:
    def failing(batch: list[str], model: str = "minilm") -> np.ndarray:
        raise RuntimeError("model exploded")

    embedder.embed_sync = failing  # type: ignore[method-assign]
    try:
        results = await asyncio.gather(embedder.embed_query("first failing text"),
                                       embedder.embed_query("second failing text"), return_exceptions=True)
    finally:
        del embedder.embed_sync
    assert all(isinstance(r, RuntimeError) for r in results)
    vector = await embedder.embed_query("first failing text")
    assert vector.shape == (embedder.dimensions(),)


def test_a_few_texts_are_embedded_on_one_torch_thread_and_batches_on_all(embedder: Embedder) -> None:
    import torch

    model = embedder._local_model(embedder.spec())
    seen: list[int] = []
    real_encode = model.encode

    def recording(*args: Any, **kwargs: Any) -> Any:
        seen.append(torch.get_num_threads())
        return real_encode(*args, **kwargs)

    before = torch.get_num_threads()
    model.encode = recording
    try:
        one = embedder.embed_sync(["Do you take Apple Pay?"])
        embedder.embed_sync([f"question {i}" for i in range(20)])
    finally:
        del model.encode
    assert seen == [1, before] and torch.get_num_threads() == before
    # The same vector either way.
    batch = embedder.embed_sync([f"question {i}" for i in range(20)] + ["Do you take Apple Pay?"])
    assert np.allclose(one[0], batch[-1], atol=1e-5)
