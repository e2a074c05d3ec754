"""Webhook authentication from the credentials stored (encrypted) with the action, never from the model.

OAuth2 uses the client-credentials grant; its access token is cached (encrypted, in the shared cache
backend so every worker reuses it) until shortly before it expires.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

import httpx
from sqlalchemy import select

from cortex.db.models import ActionDefinition
from cortex.kit.runtime import Runtime
from cortex.kit.url_guard import check_url

_TOKEN_EXPIRY_MARGIN_SECONDS = 30


class AuthFailed(RuntimeError):
    """The credentials could not be turned into request authentication (e.g. the token endpoint failed)."""


async def load_credentials(runtime: Runtime, company_id: uuid.UUID, action_id: uuid.UUID) -> dict[str, str]:
    async with runtime.database.session() as session:
        encrypted = await session.scalar(
            select(ActionDefinition.auth_credentials_encrypted).where(
                ActionDefinition.id == action_id, ActionDefinition.company_id == company_id
            )
        )
    if not encrypted:
        return {}
    return {str(k): str(v) for k, v in runtime.secrets.decrypt_json(encrypted).items()}


async def apply_auth(runtime: Runtime, client: httpx.AsyncClient, *, action_id: uuid.UUID, auth_type: str,
                     credentials: dict[str, str], headers: dict[str, str]) -> httpx.BasicAuth | None:
    """Adds the auth headers in place; returns an httpx auth object where the scheme needs one."""
    if auth_type == "api_key":
        headers[credentials.get("header_name") or "X-API-Key"] = credentials["api_key"]
    elif auth_type == "bearer":
        headers["Authorization"] = f"Bearer {credentials['token']}"
    elif auth_type == "basic":
        return httpx.BasicAuth(credentials["username"], credentials["password"])
    elif auth_type == "oauth2":
        headers["Authorization"] = f"Bearer {await _oauth2_token(runtime, client, action_id, credentials)}"
    return None


async def _oauth2_token(runtime: Runtime, client: httpx.AsyncClient, action_id: uuid.UUID,
                        credentials: dict[str, str]) -> str:
    fingerprint = hashlib.sha256(
        json.dumps([credentials["token_url"], credentials["client_id"], credentials.get("scope")]).encode()
    ).hexdigest()[:24]
    key = f"cortex:oauth2:{action_id}:{fingerprint}"
    cached = await runtime.cache.get(key)
    if cached is not None:
        return str(runtime.secrets.decrypt_json(cached.decode())["access_token"])
    await check_url(credentials["token_url"], allow_private=runtime.settings.allow_private_webhooks)
    form: dict[str, Any] = {"grant_type": "client_credentials", "client_id": credentials["client_id"],
                            "client_secret": credentials["client_secret"]}
    if credentials.get("scope"):
        form["scope"] = credentials["scope"]
    try:
        response = await client.post(credentials["token_url"], data=form)
    except httpx.HTTPError as exc:
        raise AuthFailed(f"oauth2 token endpoint unreachable: {type(exc).__name__}") from exc
    if response.status_code != 200:
        raise AuthFailed(f"oauth2 token endpoint answered {response.status_code}")
    try:
        payload = response.json()
        token = str(payload["access_token"])
    except (ValueError, KeyError) as exc:
        raise AuthFailed("oauth2 token endpoint returned no access_token") from exc
    expires_in = float(payload.get("expires_in") or 3600)
    ttl = expires_in - _TOKEN_EXPIRY_MARGIN_SECONDS
    if ttl > 0:
        await runtime.cache.set(key, runtime.secrets.encrypt_json({"access_token": token}), ttl)
    return token
