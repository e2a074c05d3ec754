"""The rules of `Idempotency-Key` on the chat endpoints.

The same key and the same request within 24 hours gets the first request's response (waiting for it
while it runs); the same key with another request is a 422. The claim is inserted before the turn
runs, so of two concurrent requests with one key exactly one runs. A turn that fails releases its
key: the client's retry then runs the turn again (the failed attempt stored no reply).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from cortex.idempotency import repository
from cortex.kit.errors import Conflict, CortexError
from cortex.kit.runtime import Runtime

TTL = timedelta(hours=24)
# A claim pending this long is abandoned (its worker died); no turn runs anywhere near this long.
LEASE = timedelta(minutes=15)
POLL_SECONDS = 0.05
_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")


class IdempotencyKeyReused(CortexError):
    status_code = 422
    code = "idempotency_key_reused"
    default_detail = "this Idempotency-Key was used with a different request body"


class InvalidIdempotencyKey(CortexError):
    status_code = 400
    code = "invalid_idempotency_key"
    default_detail = "Idempotency-Key must be 1 to 255 visible ASCII characters"


class IdempotencyKeyInFlight(Conflict):
    code = "idempotency_key_in_flight"
    default_detail = "a request with this Idempotency-Key is still running; retry later"


@dataclass(frozen=True)
class Claim:
    """This request runs the turn, and stores its response under the key."""

    company_id: uuid.UUID
    id: uuid.UUID


@dataclass(frozen=True)
class Replay:
    response: dict[str, Any]


def fingerprint(path: str, body: Any) -> str:
    canonical = json.dumps({"path": path, "body": body}, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def check_key(key: str) -> str:
    if not _KEY.match(key):
        raise InvalidIdempotencyKey()
    return key


async def claim(runtime: Runtime, company_id: uuid.UUID, key: str, request_hash: str) -> Claim | Replay:
    """Claim `key` for this request, or the stored response of the request that holds it."""
    check_key(key)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + runtime.settings.idempotency_wait_seconds
    while True:
        async with runtime.database.session() as session:
            await repository.drop_expired(session, company_id, key, ttl=TTL, lease=LEASE)
            claim_id = await repository.insert_claim(session, company_id, key, request_hash)
        if claim_id is not None:
            return Claim(company_id, claim_id)
        async with runtime.database.session() as session:
            held = await repository.find(session, company_id, key)
        if held is None:
            continue  # released (its turn failed) between our insert and this read: claim it now
        if held.request_hash != request_hash:
            raise IdempotencyKeyReused()
        if held.status == "done" and held.response is not None:
            return Replay(held.response)
        if loop.time() >= deadline:
            raise IdempotencyKeyInFlight(headers={"Retry-After": "1"})
        await asyncio.sleep(POLL_SECONDS)


async def complete(runtime: Runtime, held: Claim, response: dict[str, Any]) -> None:
    async with runtime.database.session() as session:
        await repository.complete(session, held.company_id, held.id, response)


async def release(runtime: Runtime, held: Claim) -> None:
    async with runtime.database.session() as session:
        await repository.release(session, held.company_id, held.id)
