"""What an API key may do to its company's keys: never more than it holds itself.

A key creates or revokes only keys whose scopes are within its own (`*` holds every scope) and whose
rate limit is within its own; a key without its own limit has the service default. A created key
never outlives an expiring creator. Portal users (the company's admins) are not bound by this.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from cortex.auth.api_keys import has_scope
from cortex.auth.schemas import ApiKeyCreate
from cortex.db.models import ApiKey
from cortex.kit.errors import Forbidden


class KeyPowerExceeded(Forbidden):
    default_detail = "this API key cannot act beyond its own scopes and limits"


class KeyHolder(Protocol):
    @property
    def scopes(self) -> tuple[str, ...]: ...
    @property
    def rate_limit_per_minute(self) -> int | None: ...
    @property
    def expires_at(self) -> datetime | None: ...


@dataclass(frozen=True)
class KeyTerms:
    """A new key's limits once its creator's own have been applied."""

    rate_limit_per_minute: int | None
    expires_at: datetime | None

    @classmethod
    def as_requested(cls, data: ApiKeyCreate, now: datetime) -> KeyTerms:
        expires_at = now + timedelta(days=data.expires_in_days) if data.expires_in_days else None
        return cls(data.rate_limit_per_minute, expires_at)


def _holds_all(held: tuple[str, ...], wanted: list[str]) -> bool:
    return all(has_scope(list(held), scope) for scope in wanted)


@dataclass(frozen=True)
class KeyPowers:
    scopes: tuple[str, ...]
    own_rate_limit: int | None
    expires_at: datetime | None
    default_rate_limit: int

    @classmethod
    def of(cls, holder: KeyHolder, default_rate_limit: int) -> KeyPowers:
        return cls(tuple(holder.scopes), holder.rate_limit_per_minute, holder.expires_at, default_rate_limit)

    @property
    def rate_limit(self) -> int:
        return self.own_rate_limit if self.own_rate_limit is not None else self.default_rate_limit

    def terms_for(self, data: ApiKeyCreate, now: datetime) -> KeyTerms:
        if not _holds_all(self.scopes, data.scopes):
            raise KeyPowerExceeded("a key cannot grant scopes it does not hold")
        requested = data.rate_limit_per_minute
        if requested is not None and requested > self.rate_limit:
            raise KeyPowerExceeded(f"a key cannot grant a rate limit above its own ({self.rate_limit} per minute)")
        # Unstated, the new key gets the creator's own limit: the default would let a limited key
        # mint an unlimited one.
        rate_limit = requested if requested is not None else self.own_rate_limit
        expires_at = KeyTerms.as_requested(data, now).expires_at
        if self.expires_at is not None:
            # Whole days: a key with 29.9 days left may ask for 30 and gets its creator's expiry.
            days_left = max(0, math.ceil((self.expires_at - now) / timedelta(days=1)))
            if data.expires_in_days is not None and data.expires_in_days > days_left:
                raise KeyPowerExceeded(f"a key cannot create a key that outlives it ({days_left} days left)")
            expires_at = self.expires_at if expires_at is None else min(expires_at, self.expires_at)
        return KeyTerms(rate_limit, expires_at)

    def check_revoke(self, key: ApiKey) -> None:
        if not _holds_all(self.scopes, list(key.scopes)):
            raise KeyPowerExceeded("a key cannot revoke a key holding scopes it does not hold")
        target_limit = key.rate_limit_per_minute if key.rate_limit_per_minute is not None else self.default_rate_limit
        if target_limit > self.rate_limit:
            raise KeyPowerExceeded("a key cannot revoke a key with a higher rate limit than its own")
