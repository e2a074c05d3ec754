"""API keys: create (the raw key shown once, on the answer to the form), list, revoke."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request
from pydantic import ValidationError
from starlette.responses import RedirectResponse, Response

from cortex.auth import service
from cortex.auth.api_keys import SCOPES
from cortex.auth.deps import principal_cache_key
from cortex.auth.schemas import ApiKeyCreate, ApiKeyCreated
from cortex.db.engine import after_commit
from cortex.kit.deps import RuntimeDep, SessionDep
from cortex.portal import queries
from cortex.portal.rendering import page
from cortex.portal.web_session import PREFIX, ViewerDep

router = APIRouter(prefix=PREFIX + "/keys", include_in_schema=False)

PAGE_SIZE = 25


async def _keys_page(request: Request, viewer: ViewerDep, session: SessionDep, *, page_number: int = 1,
                     created: ApiKeyCreated | None = None, errors: dict[str, str] | None = None,
                     status_code: int = 200) -> Response:
    keys, has_more = await queries.list_keys(session, viewer.company_id, max(page_number, 1), PAGE_SIZE)
    return page(request, "keys.html", viewer, status_code=status_code, keys=keys, has_more=has_more,
                page_number=page_number, created=created, errors=errors or {}, scopes=SCOPES, nav="keys")


@router.get("")
async def key_list(request: Request, viewer: ViewerDep, session: SessionDep, page_number: int = 1) -> Response:
    return await _keys_page(request, viewer, session, page_number=page_number)


@router.post("")
async def create_key(request: Request, viewer: ViewerDep, session: SessionDep) -> Response:
    form = await request.form()
    expires = str(form.get("expires_in_days") or "").strip()
    body = {"name": str(form.get("name") or ""), "scopes": [str(s) for s in form.getlist("scopes")] or ["*"],
            "expires_in_days": int(expires) if expires.isdigit() else (expires or None)}
    try:
        data = ApiKeyCreate.model_validate(body)
    except ValidationError as exc:
        errors = {str(e["loc"][0]) if e.get("loc") else "form": str(e.get("msg", "")) for e in exc.errors()}
        return await _keys_page(request, viewer, session, errors=errors, status_code=422)
    created = await service.create_api_key(session, viewer.company_id, data, created_by=viewer.claims.user_id)
    # The raw key is in this answer only; it is never stored, and no later page can show it again.
    return await _keys_page(request, viewer, session, created=created, status_code=201)


@router.post("/{key_id}/revoke")
async def revoke_key(key_id: uuid.UUID, viewer: ViewerDep, session: SessionDep, runtime: RuntimeDep) -> Response:
    key = await service.revoke_api_key(session, viewer.company_id, key_id)
    cache_key = principal_cache_key(key.key_hash)

    async def forget() -> None:
        await runtime.cache.delete(cache_key)

    after_commit(session, forget)
    return RedirectResponse(f"{PREFIX}/keys", status_code=303)
