"""Customer memory: the customer's facts, manual saves, deleting a fact, forgetting a customer."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Path, Query

from cortex.auth.deps import MemoryAuth
from cortex.kit.deps import RuntimeDep, SessionDep
from cortex.kit.pagination import ListParams, Page, list_query
from cortex.memory import repository, service
from cortex.memory.schemas import (
    Category,
    CustomerForgotten,
    FactDeleted,
    FactListed,
    FactSave,
    FactSaved,
    MemoryPublic,
    MemoryQuery,
)

memory_router = APIRouter(prefix="/v1/memory", tags=["memory"])
# A customer's facts as a plain list, beside the customer's profile.
customer_facts_router = APIRouter(prefix="/v1/customers", tags=["memory"])

CustomerId = Annotated[str, Path(min_length=1, max_length=200)]


@memory_router.delete("/fact/{fact_id}", response_model=FactDeleted)
async def delete_fact(fact_id: uuid.UUID, principal: MemoryAuth, session: SessionDep) -> FactDeleted:
    return await service.delete_fact(session, principal.company_id, fact_id)


@memory_router.post("/{customer_id}", response_model=MemoryPublic)
async def customer_memory(customer_id: CustomerId, body: MemoryQuery, principal: MemoryAuth, session: SessionDep,
                          runtime: RuntimeDep) -> MemoryPublic:
    principal.require_company(body.company_id)
    return await service.memory_view(session, runtime, body.company_id, customer_id, body.query)


@memory_router.post("/{customer_id}/save", response_model=FactSaved)
async def save_fact(customer_id: CustomerId, body: FactSave, principal: MemoryAuth, session: SessionDep,
                    runtime: RuntimeDep) -> FactSaved:
    principal.require_company(body.company_id)
    return await service.save_fact(session, runtime, body.company_id, customer_id, body)


@memory_router.delete("/{customer_id}", response_model=CustomerForgotten)
async def forget_customer(customer_id: CustomerId, company_id: Annotated[uuid.UUID, Query()], principal: MemoryAuth,
                          session: SessionDep, runtime: RuntimeDep) -> CustomerForgotten:
    principal.require_company(company_id)
    return await service.forget_customer(session, runtime, principal, customer_id)


@customer_facts_router.get("/{ref}/facts", response_model=Page[FactListed])
async def list_customer_facts(
    ref: Annotated[str, Path(min_length=1, max_length=200)], principal: MemoryAuth, session: SessionDep,
    page: Annotated[ListParams, list_query(repository.FACT_LISTING)],
    agent_id: uuid.UUID | None = None, category: Category | None = None,
    include_superseded: Annotated[bool, Query(description="Also list facts a newer one replaced.")] = False,
) -> Page[FactListed]:
    return await service.customer_facts(session, principal.company_id, ref, page, agent_id=agent_id,
                                        category=category, include_superseded=include_superseded)
