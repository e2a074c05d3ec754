"""The one pagination helper: `{items, total_count, page, page_size, total_pages, has_more}` with a real count.

A list endpoint declares what it can be sorted by with a `Listing` (its sortable fields and the columns that
`created_after` / `updated_after` compare); `list_query(listing)` is the FastAPI dependency for its query
parameters and `paginate(..., listing=listing)` applies them. The count comes from a window function in the
same query as the page, so a page costs one round trip (a second one only for a page past the end).
"""


from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Depends, Query
from pydantic import AwareDatetime, BaseModel, computed_field
from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import QueryableAttribute
from sqlalchemy.sql.elements import ColumnElement

T = TypeVar("T")
# A mapped attribute (`Agent.created_at`) or any column expression.
Column = ColumnElement[Any] | QueryableAttribute[Any]

MAX_PAGE = 1_000_000
MAX_PAGE_SIZE = 100


class PageParams(BaseModel):
    page: int = 1
    page_size: int = 20


class ListParams(PageParams):
    """A page plus the sort and the time filters every list takes."""

    sort_field: str = "created_at"
    descending: bool = True
    created_after: datetime | None = None
    updated_after: datetime | None = None


def _page_params(
    page: Annotated[int, Query(ge=1, le=MAX_PAGE, description="Page number, from 1.")] = 1,
    page_size: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE, description="Items per page (at most 100).")] = 20,
) -> PageParams:
    return PageParams(page=page, page_size=page_size)


PageQuery = Annotated[PageParams, Depends(_page_params)]


@dataclass(frozen=True)
class Listing:
    """What one list can be sorted and filtered by.

    `sort` maps each public field name to the columns it orders by; `tiebreak` is appended to every order so
    that pages never overlap. `updated` is None for a resource that never changes (its `updated_after` then
    compares the creation time, which is also its last change).
    """

    sort: Mapping[str, Sequence[Column]]
    created: Column
    updated: Column | None
    tiebreak: Sequence[Column]
    default_sort: str = "created_at:desc"

    @property
    def sort_pattern(self) -> str:
        return "^(" + "|".join(sorted(self.sort)) + ")(:(asc|desc))?$"

    def describe_sort(self) -> str:
        fields = ", ".join(f"`{name}`" for name in sorted(self.sort))
        return (f"`field` or `field:asc` / `field:desc` (ascending when no direction is given). "
                f"Fields: {fields}. Default `{self.default_sort}`.")


def list_query(listing: Listing) -> Any:
    """`Annotated[ListParams, list_query(LISTING)]`: page, page_size, sort, created_after, updated_after."""

    def dependency(
        page: Annotated[int, Query(ge=1, le=MAX_PAGE, description="Page number, from 1.")] = 1,
        page_size: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE, description="Items per page (at most 100).")] = 20,
        sort: Annotated[str, Query(pattern=listing.sort_pattern, description=listing.describe_sort())]
        = listing.default_sort,
        created_after: Annotated[AwareDatetime | None, Query(
            description="Only items created strictly after this time (ISO 8601 with a UTC offset).")] = None,
        updated_after: Annotated[AwareDatetime | None, Query(
            description="Only items changed strictly after this time (ISO 8601 with a UTC offset): "
                        "what an incremental sync asks for.")] = None,
    ) -> ListParams:
        field, _, direction = sort.partition(":")
        return ListParams(page=page, page_size=page_size, sort_field=field, descending=direction == "desc",
                          created_after=created_after, updated_after=updated_after)

    return Depends(dependency)


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


def apply_listing(statement: Select[Any], params: PageParams, listing: Listing | None) -> Select[Any]:
    """The statement filtered by the time filters and ordered by the chosen sort (then the tiebreak)."""
    if listing is None:
        return statement
    if not isinstance(params, ListParams):  # a caller without list parameters gets the list's default order
        field, _, direction = listing.default_sort.partition(":")
        params = ListParams(page=params.page, page_size=params.page_size, sort_field=field,
                            descending=direction == "desc")
    if params.created_after is not None:
        statement = statement.where(listing.created > params.created_after)
    if params.updated_after is not None:
        statement = statement.where((listing.updated if listing.updated is not None else listing.created)
                                    > params.updated_after)
    columns = [*listing.sort[params.sort_field], *listing.tiebreak]
    return statement.order_by(None).order_by(*[c.desc() if params.descending else c.asc() for c in columns])


async def paginate(
    session: AsyncSession, statement: Select[Any], params: PageParams, to_item: Callable[[Any], T], *,
    listing: Listing | None = None,
) -> Page[T]:
    statement = apply_listing(statement, params, listing)
    counted = statement.add_columns(func.count().over().label("_total_count"))
    rows: Sequence[Any] = (
        await session.execute(counted.limit(params.page_size).offset((params.page - 1) * params.page_size))
    ).all()
    if rows:
        total = int(rows[-1][-1])
    elif params.page == 1:
        total = 0
    else:  # past the end: the window saw no row, so count apart
        total = int(await session.scalar(select(func.count()).select_from(statement.order_by(None).subquery()))
                    or 0)
    return Page[T](items=[to_item(row[0]) for row in rows], total_count=total, page=params.page,
                   page_size=params.page_size)
