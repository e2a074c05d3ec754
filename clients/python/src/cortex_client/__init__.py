"""The Python client of the Cortex API.

    from cortex_client import Cortex
    client = Cortex(api_key="ck_...", base_url="http://127.0.0.1:8000", company_id="...")
    reply = client.chat(agent_id=..., conversation_id=..., customer_id="c-1", message="Hello")
"""

from cortex_client import webhooks
from cortex_client._async_client import AsyncCortex, AsyncPaginator
from cortex_client._errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    CortexError,
    FieldError,
    InternalServerError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    RateLimitError,
    StreamError,
    UnprocessableEntityError,
)
from cortex_client._retry import Backoff
from cortex_client._sync_client import Cortex, Paginator
from cortex_client._version import VERSION as __version__
from cortex_client.types import ChatEvent

__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AsyncCortex",
    "AsyncPaginator",
    "AuthenticationError",
    "Backoff",
    "BadRequestError",
    "ChatEvent",
    "ConflictError",
    "Cortex",
    "CortexError",
    "FieldError",
    "InternalServerError",
    "NotFoundError",
    "Paginator",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "RateLimitError",
    "StreamError",
    "UnprocessableEntityError",
    "__version__",
    "webhooks",
]
