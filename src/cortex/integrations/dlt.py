"""A dlt source over Cortex's API, for loading a company's data into a warehouse.

Built on dlt's declarative `rest_api` source: bearer auth with an API key (the key's company is the
only one whose rows the API answers with), page-number paging from page 1 that stops at the page
object's `total_pages` (dlt's `total_path` counts pages, not items) or on an empty page, and every
table merged on `id` and loaded incrementally: each run asks only for rows changed since the newest
`updated_at` (or, for rows that never change, `created_at`) that the previous run saw.

    import dlt
    from cortex.integrations.dlt import cortex_source

    pipeline = dlt.pipeline("cortex", destination="duckdb", dataset_name="cortex")
    pipeline.run(cortex_source("http://127.0.0.1:8000", api_key))

Facts and documents belong to a customer and to a knowledge source: they are read per customer and
per source, whose lists are walked in full each run (they are not loaded themselves) so that a new
fact of an unchanged customer is still found.

Needs the `export` extra (`pip install "cortex[export]"`): dlt itself is not a dependency of the server.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import dlt
from dlt.sources import DltSource
from dlt.sources.rest_api import rest_api_source

# Before any Cortex row: the first run loads everything.
EPOCH = "1970-01-01T00:00:00+00:00"
PAGE_SIZE = 100  # the API's largest page


@dataclass(frozen=True)
class Table:
    name: str
    path: str
    cursor: str = "updated_at"  # the field the incremental load follows
    param: str = "updated_after"  # the list endpoint's filter on it (strictly after)
    parent: str | None = None  # a hidden list whose items the path's {placeholder} iterates


# The tables, in load order. Events never change once written: their creation time is their last change.
TABLES = (
    Table("conversations", "conversations"),
    Table("messages", "messages"),
    Table("customers", "customers"),
    Table("facts", "customers/{resources.customer_refs.id}/facts", parent="customer_refs"),
    Table("documents", "knowledge/sources/{resources.knowledge_sources.id}/documents", parent="knowledge_sources"),
    Table("events", "events", cursor="created_at", param="created_after"),
)
# The lists that facts and documents are read through, walked in full each run and not loaded.
PARENTS = {"customer_refs": "customers", "knowledge_sources": "knowledge/sources"}


def _resource(table: Table, initial_value: str) -> dict[str, Any]:
    # The filter is the cursor as it stood when the run began (`start_value`), not as it advances: facts
    # and documents are read once per customer or source, and each of those reads must ask from the same
    # point. Newest first: a row changed while the run pages moves to the front (a page may repeat a row,
    # which the merge absorbs, but none is skipped), and past the cursor, so the next run fetches it.
    return {
        "name": table.name,
        "endpoint": {
            "path": table.path,
            "params": {"sort": f"{table.cursor}:desc", table.param: "{incremental.start_value}"},
            "incremental": {"cursor_path": table.cursor, "initial_value": initial_value},
        },
    }


def rest_api_config(base_url: str, api_key: str, *, page_size: int = PAGE_SIZE,
                    tables: tuple[str, ...] | None = None, initial_value: str = EPOCH) -> dict[str, Any]:
    """The `rest_api` configuration, for callers who want to change it before building the source."""
    chosen = [table for table in TABLES if tables is None or table.name in tables]
    unknown = set(tables or ()) - {table.name for table in TABLES}
    if unknown:
        raise ValueError(f"unknown Cortex tables: {', '.join(sorted(unknown))}")
    parents = sorted({table.parent for table in chosen if table.parent})
    resources: list[dict[str, Any]] = [
        {"name": parent, "endpoint": {"path": PARENTS[parent]}, "selected": False, "primary_key": "id",
         "write_disposition": "replace"} for parent in parents]
    resources += [_resource(table, initial_value) for table in chosen]
    return {
        "client": {
            "base_url": base_url.rstrip("/") + "/v1/",
            "auth": {"type": "bearer", "token": api_key},
            "paginator": {"type": "page_number", "base_page": 1, "page_param": "page", "total_path": "total_pages",
                          "stop_after_empty_page": True},
        },
        "resource_defaults": {
            "primary_key": "id",
            "write_disposition": "merge",
            "endpoint": {"data_selector": "items", "params": {"page_size": page_size}},
        },
        "resources": resources,
    }


def cortex_source(base_url: str, api_key: str, *, page_size: int = PAGE_SIZE, tables: tuple[str, ...] | None = None,
                  initial_value: str = EPOCH) -> DltSource:
    """conversations, messages, customers, facts, documents and events of the API key's company."""
    source: DltSource = rest_api_source(rest_api_config(  # type: ignore[arg-type]
        base_url, api_key, page_size=page_size, tables=tables, initial_value=initial_value), name="cortex")
    return source


def pipeline(destination: Any, *, pipeline_name: str = "cortex", dataset_name: str = "cortex",
             pipelines_dir: str | None = None, progress: Any = None) -> dlt.Pipeline:
    """A dlt pipeline named for Cortex; its state (the incremental cursors) lives in `pipelines_dir`."""
    options: dict[str, Any] = {"pipelines_dir": pipelines_dir} if pipelines_dir else {}
    return dlt.pipeline(pipeline_name=pipeline_name, destination=destination, dataset_name=dataset_name,
                        progress=progress or "log", **options)
