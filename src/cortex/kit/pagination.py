"""The one pagination helper: `{items, total_count, page, page_size, total_pages, has_more}` with a real count."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Depends, Query
from pydantic import BaseModel, computed_field
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

    # Derived from the count rather than stored, so they can never disagree with it; a paginator stops on
    # `has_more` (or on `page == total_pages`) without a request for an empty page.
    @computed_field  # type: ignore[prop-decorator]
    @property
    def total_pages(self) -> int:
        """How many pages of `page_size` the `total_count` items fill (0 when there are none)."""
        return -(-self.total_count // self.page_size) if self.page_size > 0 else 0

    @computed_field  # type: ignore[prop-decorator]
    @property
    def has_more(self) -> bool:
        """Whether a page after this one holds items."""
        return self.page < self.total_pages


async def paginate(
    session: AsyncSession, statement: Select[Any], params: PageParams, to_item: Callable[[Any], T]
) -> Page[T]:
    total = await session.scalar(select(func.count()).select_from(statement.order_by(None).subquery()))
    rows: Sequence[Any] = (
        await session.scalars(statement.limit(params.page_size).offset((params.page - 1) * params.page_size))
    ).all()
    return Page[T](items=[to_item(r) for r in rows], total_count=int(total or 0), page=params.page,
                   page_size=params.page_size)
