"""A remote embedding model (LiteLLM, OpenAI-compatible) that fails or answers nonsense raises a typed
error: EmbeddingUnavailable (503) when it cannot be reached, EmbeddingBadAnswer (502) when its answer is
unusable; never a TypeError from deep inside, never the provider's own text."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from cortex.embeddings.embedder import Embedder
from cortex.embeddings.errors import EmbeddingBadAnswer, EmbeddingFailed, EmbeddingUnavailable
from tests.scripted_llm import ScriptedLLM, refused_api_base


@pytest.fixture
def provider(llm_server: ScriptedLLM) -> Iterator[ScriptedLLM]:
    llm_server.embedding_status, llm_server.embedding_body, llm_server.embedding_delay_seconds = 200, None, 0.0
    try:
        yield llm_server
    finally:
        llm_server.embedding_status, llm_server.embedding_body, llm_server.embedding_delay_seconds = 200, None, 0.0


@pytest.fixture
def remote(provider: ScriptedLLM) -> Iterator[Embedder]:
    embedder = Embedder(litellm_api_base=provider.api_base, litellm_api_key="sk-test", litellm_timeout_seconds=2.0)
    yield embedder
    embedder.close()


def _item(vector: Any) -> dict[str, Any]:
    return {"object": "embedding", "index": 0, "embedding": vector}


async def test_a_good_answer_is_unit_vectors(remote: Embedder) -> None:
    vectors = await remote.embed(["opening hours", "returns"], "openai")
    assert vectors.shape == (2, 1536) and np.allclose(np.linalg.norm(vectors, axis=1), 1.0)


@pytest.mark.parametrize("body", [
    {"data": None},
    {},
    {"object": "list", "data": []},
    {"object": "list", "data": [_item("not numbers")]},
    {"object": "list", "data": [_item([0.1, 0.2])]},
    {"object": "list", "data": [{"object": "embedding", "index": 0}]},
], ids=["data-null", "empty-object", "no-items", "strings", "wrong-dimensions", "no-embedding"])
async def test_nonsense_is_a_bad_answer(remote: Embedder, provider: ScriptedLLM, body: dict[str, Any]) -> None:
    provider.embedding_body = body
    with pytest.raises(EmbeddingBadAnswer) as raised:
        await remote.embed(["opening hours"], "openai")
    assert raised.value.status_code == 502 and raised.value.detail.startswith("embedding model openai answered")


async def test_error_statuses(remote: Embedder, provider: ScriptedLLM) -> None:
    provider.embedding_status = 500
    with pytest.raises(EmbeddingBadAnswer) as bad:
        await remote.embed(["opening hours"], "openai")
    assert bad.value.status_code == 502 and bad.value.detail == "embedding model openai answered http 500"
    provider.embedding_status = 503
    with pytest.raises(EmbeddingUnavailable) as down:
        await remote.embed_query("opening hours", "openai")
    assert down.value.status_code == 503 and "http 503" in down.value.detail


async def test_unreachable_and_slow_providers_are_unavailable(provider: ScriptedLLM) -> None:
    refused = Embedder(litellm_api_base=refused_api_base(), litellm_api_key="sk-test")
    slow = Embedder(litellm_api_base=provider.api_base, litellm_api_key="sk-test", litellm_timeout_seconds=0.2)
    provider.embedding_delay_seconds = 1.0
    try:
        with pytest.raises(EmbeddingUnavailable) as unreachable:
            await refused.embed(["opening hours"], "openai")
        with pytest.raises(EmbeddingFailed) as timed_out:
            await slow.embed(["opening hours"], "openai")
    finally:
        refused.close()
        slow.close()
    assert unreachable.value.status_code == 503
    assert unreachable.value.detail == "embedding model openai is unreachable"
    assert isinstance(timed_out.value, EmbeddingUnavailable)
    assert timed_out.value.detail == "embedding model openai timed out"
