"""Typed failures of a remote embedding model, mapped to 503 (unreachable) and 502 (bad answer).

The reason is a short fixed phrase ("unreachable", "timed out", "answered http 500", "answered malformed
embeddings"): the provider's own error text stays in the server log, never in a response.
"""

from __future__ import annotations

import json

import httpx
import openai

from cortex.kit.errors import BadGateway, CortexError, ServiceUnavailable

# Statuses that say "try later" rather than "this answer is wrong".
_UNAVAILABLE_STATUSES = frozenset({429, 503, 504})


class EmbeddingFailed(CortexError):
    """Base of the two below: `model` is Cortex's name for it (openai, cohere), `reason` the phrase."""

    def __init__(self, model: str, reason: str) -> None:
        super().__init__(f"embedding model {model} {reason}")
        self.model = model
        self.reason = reason


class EmbeddingUnavailable(EmbeddingFailed, ServiceUnavailable):
    """The provider could not be reached, did not answer in time, or said it is overloaded."""


class EmbeddingBadAnswer(EmbeddingFailed, BadGateway):
    """The provider answered with an error status, or with something that is not the embeddings asked for."""


def classify(model: str, exc: BaseException) -> EmbeddingFailed:
    """What a failed call to a remote embedding model means, from the exception and its causes.

    LiteLLM reports a refused connection and an unparsable body as an InternalServerError (status 500)
    too, so the cause chain is read before the status."""
    seen: BaseException | None = exc
    status: int | None = None
    while seen is not None:
        if isinstance(seen, openai.APITimeoutError | httpx.TimeoutException | TimeoutError):
            return EmbeddingUnavailable(model, "timed out")
        if isinstance(seen, openai.APIConnectionError | httpx.TransportError | ConnectionError | OSError):
            return EmbeddingUnavailable(model, "is unreachable")
        if isinstance(seen, json.JSONDecodeError):
            return EmbeddingBadAnswer(model, "answered malformed embeddings")
        if isinstance(seen, httpx.HTTPStatusError):
            status = seen.response.status_code
        seen = seen.__cause__ or seen.__context__
    if status is None:
        code = getattr(exc, "status_code", None)
        status = code if isinstance(code, int) else None
    if status is None:
        return EmbeddingBadAnswer(model, f"failed ({type(exc).__name__})")
    if status in _UNAVAILABLE_STATUSES:
        return EmbeddingUnavailable(model, f"is unavailable (http {status})")
    return EmbeddingBadAnswer(model, f"answered http {status}")
