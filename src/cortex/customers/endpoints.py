"""Customers (CRUD). `{ref}` is Cortex's id or the company's own customer_id."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Response, status

from cortex.auth.deps import MemoryAuth
from cortex.customers import service
from cortex.customers.schemas import CustomerCreate, CustomerPublic, CustomerUpdate
from cortex.kit.deps import SessionDep
from cortex.kit.pagination import ListParams, Page, list_query

customers_router = APIRouter(prefix="/v1/customers", tags=["customers"])


@customers_router.post("", response_model=CustomerPublic, status_code=status.HTTP_201_CREATED)
async def create_customer(body: CustomerCreate, principal: MemoryAuth, session: SessionDep) -> CustomerPublic:
    return service.to_public(await service.create_customer(session, principal.company_id, body))


@customers_router.get("", response_model=Page[CustomerPublic])
async def list_customers(principal: MemoryAuth, session: SessionDep,
                         page: Annotated[ListParams, list_query(service.CUSTOMER_LISTING)]) -> Page[CustomerPublic]:
    return await service.list_customers(session, principal.company_id, page)


@customers_router.get("/{ref}", response_model=CustomerPublic)
async def get_customer(ref: str, principal: MemoryAuth, session: SessionDep) -> CustomerPublic:
    return service.to_public(await service.get_customer(session, principal.company_id, ref))


@customers_router.patch("/{ref}", response_model=CustomerPublic)
async def update_customer(ref: str, body: CustomerUpdate, principal: MemoryAuth,
                          session: SessionDep) -> CustomerPublic:
    return service.to_public(await service.update_customer(session, principal.company_id, ref, body))


@customers_router.delete("/{ref}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_customer(ref: str, principal: MemoryAuth, session: SessionDep) -> Response:
    await service.delete_customer(session, principal.company_id, ref)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
