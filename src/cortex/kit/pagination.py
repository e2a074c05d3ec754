"""The one pagination helper: `{items, total_count, page, page_size}` with a real count."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Depends, Query
from pydantic import BaseModel
from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

T = TypeVar("T")


class PageParams(BaseModel):
    page: int = 1
    page_size: int = 20


def _page_params(
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
    page_size: Annotated[int, Query(ge=1, le=100)] = 20,
) -> PageParams:
    return PageParams(page=page, page_size=page_size)


PageQuery = Annotated[PageParams, Depends(_page_params)]


class Page(BaseModel, Generic[T]):
    items: list[T]
    total_count: int
    page: int
    page_size: int


async def paginate(
    session: AsyncSession, statement: Select[Any], params: PageParams, to_item: Callable[[Any], T]
) -> Page[T]:
    total = await session.scalar(select(func.count()).select_from(statement.order_by(None).subquery()))
    rows: Sequence[Any] = (
        await session.scalars(statement.limit(params.page_size).offset((params.page - 1) * params.page_size))
    ).all()
    return Page[T](items=[to_item(r) for r in rows], total_count=int(total or 0), page=params.page,
                   page_size=params.page_size)
