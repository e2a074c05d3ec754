"""`cortex export duckdb`: the dlt source over the live API, loaded twice into one DuckDB file.

The first run loads the seeded company; after new messages the second run fetches only the rows that
are new or changed, and every table then equals what the API lists. Another company's rows never appear.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import duckdb
import pytest
from cortex_client import Cortex
from typer.testing import CliRunner

from cortex.cli import app
from tests.live_cortex import LiveCortex
from tests.scripted_llm import Reply, ScriptedLLM
from tests.support import Tenant

TABLES = ("conversations", "messages", "customers", "facts", "documents", "events")
NO_CACHE = {"cache": {"enabled": False}}


def _seed(cortex: Cortex, live_llm: ScriptedLLM, tag: str) -> dict[str, Any]:
    agent = cortex.agents.create(name=f"Export {tag}", settings=NO_CACHE)
    conversations = [str(uuid.uuid4()), str(uuid.uuid4())]
    for index, conversation in enumerate(conversations):
        live_llm.queue(Reply(text=f"Reply {tag} {index}"))
        cortex.chat(agent_id=agent["id"], conversation_id=conversation, customer_id=f"{tag}-c{index}",
                    message=f"Hello {index}")
    cortex.customers.create(customer_id=f"{tag}-known", email=f"{tag}@example.com")
    cortex.memory.save(f"{tag}-known", fact="Prefers email", category="preference")
    source = cortex.knowledge.sources.create(name=f"Docs {tag}")
    cortex.knowledge.upload(source["id"], b"# Hours\n\nWe open at nine.\n", filename="hours.md")
    return {"agent": agent, "conversations": conversations}


def _listed(cortex: Cortex) -> dict[str, dict[str, str]]:
    """Each table's rows as the API lists them: id -> the incremental cursor's value."""
    customers = cortex.customers.list().to_list()
    sources = cortex.knowledge.sources.list().to_list()
    rows: dict[str, list[Any]] = {
        "conversations": cortex.conversations.list().to_list(),
        "messages": cortex.messages.list().to_list(),
        "customers": customers,
        "facts": [fact for customer in customers for fact in cortex.customers.facts(customer["id"])],
        "documents": [doc for source in sources for doc in cortex.knowledge.sources.documents(source["id"])],
        "events": cortex.events.list().to_list(),
    }
    return {table: {str(row["id"]): str(row.get("updated_at") or row["created_at"]) for row in items}
            for table, items in rows.items()}


def _loaded(path: Path) -> dict[str, set[str]]:
    with duckdb.connect(str(path), read_only=True) as db:
        present = {name for (name,) in db.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'cortex_data'").fetchall()}
        return {table: {str(row[0]) for row in db.execute(f"SELECT id FROM cortex_data.{table}").fetchall()}
                if table in present else set() for table in TABLES}


def _export(path: Path, live: LiveCortex, monkeypatch: pytest.MonkeyPatch, api_key: str) -> dict[str, Any]:
    # The URL and key from the environment, as the command's defaults.
    monkeypatch.setenv("CORTEX_API_URL", live.base_url)
    monkeypatch.setenv("CORTEX_API_KEY", api_key)
    result = CliRunner().invoke(app, ["export", "duckdb", str(path)])
    assert result.exit_code == 0, result.output[-3000:]
    summary: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return summary


async def test_export_loads_a_company_then_only_what_changed(
        tenant: Tenant, other_tenant: Tenant, live: LiveCortex, live_llm: ScriptedLLM, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DLT_DATA_DIR", str(tmp_path / "dlt"))
    monkeypatch.chdir(tmp_path)  # dlt looks for a .dlt folder in the working directory
    path = tmp_path / "cortex.duckdb"
    with Cortex(tenant.api_key, base_url=live.base_url, company_id=str(tenant.company_id), timeout=120) as cortex, \
            Cortex(other_tenant.api_key, base_url=live.base_url, company_id=str(other_tenant.company_id),
                   timeout=120) as other:
        seeded = _seed(cortex, live_llm, "mine")
        _seed(other, live_llm, "theirs")
        theirs = _listed(other)

        first = _export(path, live, monkeypatch, tenant.api_key)
        before = _listed(cortex)
        assert all(before[table] for table in TABLES), {t: len(v) for t, v in before.items()}
        loaded = _loaded(path)
        assert {t: loaded[t] for t in TABLES} == {t: set(before[t]) for t in TABLES}
        assert first["rows_loaded"]["messages"] == len(before["messages"]) == 4

        live_llm.queue(Reply(text="A later reply"))
        cortex.chat(agent_id=seeded["agent"]["id"], conversation_id=seeded["conversations"][0],
                    customer_id="mine-c0", message="One more question")
        after = _listed(cortex)

        second = _export(path, live, monkeypatch, tenant.api_key)
        changed = {table: sum(1 for row_id, cursor in after[table].items() if before[table].get(row_id) != cursor)
                   for table in TABLES}
        assert changed["messages"] == 2 and changed["conversations"] == 1
        # Only what is new or changed was fetched (the cursors of the first run held).
        assert {table: second["rows_loaded"].get(table, 0) for table in TABLES} == changed
        loaded = _loaded(path)
        assert {t: loaded[t] for t in TABLES} == {t: set(after[t]) for t in TABLES}

    for table in TABLES:
        assert not loaded[table] & set(theirs[table]), table
    with duckdb.connect(str(path), read_only=True) as db:
        companies = {row[0] for row in db.execute(
            "SELECT company_id FROM cortex_data.customers UNION SELECT company_id FROM cortex_data.events").fetchall()}
    assert companies == {str(tenant.company_id)}


def test_export_without_a_key_says_so(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("CORTEX_API_KEY", raising=False)
    result = CliRunner().invoke(app, ["export", "duckdb", str(tmp_path / "x.duckdb")])
    assert result.exit_code == 2 and "no API key" in result.output
