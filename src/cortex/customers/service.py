"""Customers: the company's own end users, known by the company's `customer_id`."""

from __future__ import annotations

import uuid

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from cortex.customers.schemas import CustomerCreate, CustomerPublic, CustomerUpdate
from cortex.db.models import Customer
from cortex.kit.errors import Conflict, NotFound
from cortex.kit.pagination import Listing, Page, PageParams, paginate


def to_public(customer: Customer) -> CustomerPublic:
    return CustomerPublic(
        id=customer.id, company_id=customer.company_id, customer_id=customer.customer_id,
        first_name=customer.first_name, last_name=customer.last_name, email=customer.email,
        organization=customer.organization, metadata=customer.metadata_, segments=customer.segments,
        created_at=customer.created_at, updated_at=customer.updated_at,
    )


async def get_customer(session: AsyncSession, company_id: uuid.UUID, ref: str) -> Customer:
    """`ref` is Cortex's id for the customer or the company's own customer_id."""
    customer = await find_by_ref(session, company_id, ref)
    if customer is None:
        raise NotFound("customer not found")
    return customer


async def find_by_ref(session: AsyncSession, company_id: uuid.UUID, ref: str) -> Customer | None:
    matches = [Customer.customer_id == ref]
    try:
        matches.append(Customer.id == uuid.UUID(ref))
    except ValueError:
        pass
    customer = await session.scalar(
        select(Customer).where(Customer.company_id == company_id, or_(*matches))
        .order_by((Customer.customer_id == ref).desc()).limit(1))
    return customer


async def find_customer(session: AsyncSession, company_id: uuid.UUID, customer_id: str) -> Customer | None:
    return await session.scalar(select(Customer).where(Customer.company_id == company_id,
                                                       Customer.customer_id == customer_id))


async def create_customer(session: AsyncSession, company_id: uuid.UUID, data: CustomerCreate) -> Customer:
    customer = Customer(company_id=company_id, customer_id=data.customer_id, first_name=data.first_name,
                        last_name=data.last_name, email=data.email, organization=data.organization,
                        metadata_=data.metadata, segments=data.segments)
    session.add(customer)
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError as exc:
        raise Conflict(f"customer {data.customer_id!r} already exists") from exc
    await session.refresh(customer)
    return customer


_EMPTY: dict[str, type] = {"metadata": dict, "segments": list}


async def update_customer(session: AsyncSession, company_id: uuid.UUID, ref: str,
                          data: CustomerUpdate) -> Customer:
    customer = await get_customer(session, company_id, ref)
    for field, value in data.model_dump(exclude_unset=True).items():
        if value is None and field in _EMPTY:
            value = _EMPTY[field]()  # null clears metadata and segments
        setattr(customer, "metadata_" if field == "metadata" else field, value)
    await session.flush()
    await session.refresh(customer)
    return customer


async def delete_customer(session: AsyncSession, company_id: uuid.UUID, ref: str) -> None:
    await session.delete(await get_customer(session, company_id, ref))
    await session.flush()


CUSTOMER_LISTING = Listing(sort={"created_at": [Customer.created_at], "updated_at": [Customer.updated_at],
                                "customer_id": [Customer.customer_id]},
                           created=Customer.created_at, updated=Customer.updated_at, tiebreak=[Customer.id])


async def list_customers(session: AsyncSession, company_id: uuid.UUID, params: PageParams) -> Page[CustomerPublic]:
    statement = select(Customer).where(Customer.company_id == company_id)
    return await paginate(session, statement, params, to_public, listing=CUSTOMER_LISTING)
