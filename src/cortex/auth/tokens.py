"""Portal session tokens (JWT, HS256)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt

ALGORITHM = "HS256"
AUDIENCE = "cortex-portal"


@dataclass(frozen=True)
class PortalClaims:
    user_id: uuid.UUID
    company_id: uuid.UUID
    email: str


def issue_token(secret: str, claims: PortalClaims, expires_minutes: int) -> str:
    now = datetime.now(UTC)
    payload = {
        "sub": str(claims.user_id),
        "company_id": str(claims.company_id),
        "email": claims.email,
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + timedelta(minutes=expires_minutes),
    }
    return jwt.encode(payload, secret, algorithm=ALGORITHM)


def read_token(secret: str, token: str) -> PortalClaims | None:
    try:
        payload = jwt.decode(token, secret, algorithms=[ALGORITHM], audience=AUDIENCE)
        return PortalClaims(uuid.UUID(payload["sub"]), uuid.UUID(payload["company_id"]), payload["email"])
    except (jwt.PyJWTError, KeyError, ValueError):
        return None
