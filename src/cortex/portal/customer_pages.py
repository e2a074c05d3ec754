"""Customers: the list, a profile with its memory facts (superseded ones as history), forgetting one."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Form, Path, Query, Request
from starlette.responses import RedirectResponse, Response

from cortex.customers import service as customers
from cortex.kit.deps import RuntimeDep, SessionDep
from cortex.kit.errors import InvalidInput
from cortex.kit.pagination import PageParams
from cortex.memory.service import forget_customer_by
from cortex.portal import queries
from cortex.portal.rendering import page
from cortex.portal.web_session import PREFIX, ViewerDep

router = APIRouter(prefix=PREFIX + "/customers", include_in_schema=False)

PAGE_SIZE = 25
CustomerId = Annotated[str, Path(min_length=1, max_length=200)]


@router.get("")
async def customer_list(request: Request, viewer: ViewerDep, session: SessionDep,
                        page_number: Annotated[int, Query(ge=1, le=100_000)] = 1,
                        customer_id: Annotated[str, Query(alias="id", max_length=200)] = "") -> Response:
    if customer_id.strip():
        return RedirectResponse(f"{PREFIX}/customers/{quote(customer_id.strip(), safe='')}", status_code=303)
    found = await customers.list_customers(session, viewer.company_id, PageParams(page=page_number,
                                                                                  page_size=PAGE_SIZE))
    return page(request, "customers.html", viewer, customers=found, nav="customers",
                forgotten=request.query_params.get("forgotten"))


@router.get("/{customer_id}")
async def customer_page(request: Request, customer_id: CustomerId, viewer: ViewerDep,
                        session: SessionDep) -> Response:
    profile = await customers.find_customer(session, viewer.company_id, customer_id)
    facts = await queries.customer_facts(session, viewer.company_id, customer_id)
    return page(request, "customer.html", viewer, customer_id=customer_id, profile=profile,
                active=[f for f in facts if f.superseded_at is None],
                history=[f for f in facts if f.superseded_at is not None], nav="customers")


@router.post("/{customer_id}/forget")
async def forget(request: Request, customer_id: CustomerId, viewer: ViewerDep, session: SessionDep,
                 runtime: RuntimeDep, confirm: Annotated[str, Form(max_length=200)] = "") -> Response:
    """Deletes the customer's facts, messages, conversations and cache entries, once the user has typed
    the customer's id: a button alone is too easy to press."""
    if confirm != customer_id:
        raise InvalidInput("confirm", "type the customer id exactly to confirm")
    await forget_customer_by(session, runtime, viewer.company_id, customer_id, actor_key_id=None,
                             actor_name=f"portal:{viewer.email}"[:100])
    return RedirectResponse(f"{PREFIX}/customers?forgotten={customer_id}", status_code=303)
