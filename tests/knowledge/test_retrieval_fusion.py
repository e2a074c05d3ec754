"""Fusion keeps the dense search's cosine on each chunk, whichever list the chunk came first in."""

from __future__ import annotations

import uuid

from cortex.knowledge.retrieval import ScoredChunk, rrf, weighted


def _chunk(chunk_id: uuid.UUID, score: float, similarity: float | None) -> ScoredChunk:
    return ScoredChunk(chunk_id, uuid.uuid4(), "doc", "text", [], score, similarity=similarity)


def test_fused_chunks_carry_the_dense_cosine() -> None:
    both, lexical_only = uuid.uuid4(), uuid.uuid4()
    dense = [_chunk(both, 0.8, 0.8)]
    lexical = [_chunk(lexical_only, 3.0, None), _chunk(both, 1.0, None)]
    for fused in (rrf([(lexical, 0.3), (dense, 0.7)], 60), weighted([(lexical, 0.4), (dense, 0.6)])):
        by_id = {c.chunk_id: c for c in fused}
        assert by_id[both].similarity == 0.8 and by_id[lexical_only].similarity is None
        assert by_id[both].public().similarity == 0.8
