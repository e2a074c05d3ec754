"""Portal session tokens (JWT, HS256) naming their session row by `jti`."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import jwt

ALGORITHM = "HS256"
AUDIENCE = "cortex-portal"
# A token without an expiry would outlive every rotation of its user; one without `jti` names no
# session that logout could revoke.
REQUIRED_CLAIMS = ["exp", "iat", "sub", "jti", "aud"]


@dataclass(frozen=True)
class PortalClaims:
    user_id: uuid.UUID
    company_id: uuid.UUID
    email: str
    session_id: uuid.UUID


def issue_token(secret: str, claims: PortalClaims, issued_at: datetime, expires_at: datetime) -> str:
    payload = {
        "sub": str(claims.user_id),
        "company_id": str(claims.company_id),
        "email": claims.email,
        "jti": str(claims.session_id),
        "aud": AUDIENCE,
        "iat": issued_at,
        "exp": expires_at,
    }
    return jwt.encode(payload, secret, algorithm=ALGORITHM)


def read_token(secret: str, token: str) -> PortalClaims | None:
    try:
        payload = jwt.decode(token, secret, algorithms=[ALGORITHM], audience=AUDIENCE,
                             options={"require": REQUIRED_CLAIMS})
        return PortalClaims(uuid.UUID(payload["sub"]), uuid.UUID(payload["company_id"]), str(payload["email"]),
                            uuid.UUID(payload["jti"]))
    except (jwt.PyJWTError, KeyError, ValueError, TypeError, AttributeError):
        return None
