"""Schemathesis against a running `cortex serve`, with real ids seeded so that requests reach past 404.

A real server process (its own data folder, the given PostgreSQL server, every tier's model and the
hosted embedding model served by the scripted OpenAI-compatible server on loopback) is seeded through
its own API with two companies: agents, an action, a knowledge source with an indexed file, a job,
customers, a fact, a conversation and spare API keys. Schemathesis then runs every operation with the
API key, and the portal operations with a portal session, drawing path and body ids from those seeded
values half of the time (the other half stays random, so unknown and foreign ids are fuzzed too). Any
5xx fails the run, and so does any response (errors included) whose body does not match the schema the
document declares for its status (`response_schema_conformance`).

`tests/test_api_fuzz.py` runs it bounded in the test suite; for a long run:
`python -m tests.api_fuzz --max-examples 200` (prints one JSON summary).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.scripted_llm import ScriptedLLM

CORTEX = [sys.executable, "-m", "cortex.cli"]
SCHEMATHESIS = str(Path(sys.executable).with_name("schemathesis"))

# Logout ends the session it is sent with: it runs last, alone, with a session of its own.
LOGOUT = "/portal/api/logout"
# No 5xx, and every response (errors included) matches the schema the document declares for its status.
CHECKS = ("not_a_server_error", "response_schema_conformance")
# The live event stream never ends by itself.
ENDLESS = ("/v1/events/stream",)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Seeds:
    """Real ids of the two seeded companies, by the parameter names the API uses for them."""

    api_key: str
    portal_token: str
    logout_token: str
    values: dict[str, list[str]] = field(default_factory=dict)

    def add(self, name: str, *values: Any) -> None:
        bucket = self.values.setdefault(name, [])
        bucket.extend(str(value) for value in values if str(value) not in bucket)


class CortexServer:
    """`cortex serve` as a child process on a free loopback port."""

    def __init__(self, database_url: str, home: Path, llm_api_base: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # Nothing the server is asked to reach may leave the machine: the models are the scripted server's,
        # and every URL a request names is bound to a closed loopback port (see `write_config`), so private
        # addresses are allowed and no name is ever looked up.
        self.closed_url = f"http://127.0.0.1:{free_port()}"
        self.env = {**os.environ, "DATABASE_URL": database_url, "CORTEX_DATA_DIR": str(home),
                    "CORTEX_LLM_API_BASE": llm_api_base, "CORTEX_LLM_API_KEY": "sk-fuzz",
                    **{f"CORTEX_MODEL_{tier}": "openai/scripted-model"
                       for tier in ("SPEED", "NANO", "SONNET", "COMPLEX", "SEARCH")},
                    "CORTEX_ALLOW_PRIVATE_WEBHOOKS": "true",
                    "CORTEX_RATE_LIMIT_PER_MINUTE": "10000000", "CORTEX_LOG_LEVEL": "WARNING",
                    "CORTEX_MEMORY_EXTRACTION": "false", "LITELLM_LOCAL_MODEL_COST_MAP": "True",
                    "HF_HUB_OFFLINE": "1"}
        self.env.pop("REDIS_URL", None)
        self.log = home / "server.log"
        self.process: subprocess.Popen[bytes] | None = None

    def cli(self, *args: str) -> dict[str, Any]:
        result = subprocess.run(CORTEX + list(args), env=self.env, capture_output=True, text=True, timeout=300)
        if result.returncode != 0:
            raise RuntimeError(f"cortex {' '.join(args)} failed: {result.stderr[-2000:]}")
        data: dict[str, Any] = json.loads(result.stdout)
        return data

    def start(self) -> CortexServer:
        handle = self.log.open("wb")
        self.process = subprocess.Popen([*CORTEX, "serve", "--port", str(self.port)], env=self.env,
                                        stdout=handle, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("cortex serve exited: " + self.log.read_text()[-3000:])
            try:
                if httpx.get(self.url + "/health", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise RuntimeError("cortex serve did not answer /health within 180 s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def _ok(response: httpx.Response) -> dict[str, Any]:
    if response.status_code >= 300:
        raise RuntimeError(f"seeding {response.request.method} {response.request.url.path} got "
                           f"{response.status_code}: {response.text[:500]}")
    data: dict[str, Any] = response.json()
    return data


def _seed_company(http: httpx.Client, key: str, company_id: str, seeds: Seeds, tag: str) -> None:
    headers = {"Authorization": f"Bearer {key}"}
    seeds.add("company_id", company_id)
    agent = _ok(http.post("/v1/agents", headers=headers, json={
        "name": f"Fuzz agent {tag}", "faqs": [{"question": "What are your opening hours?",
                                              "answer": "9 to 5, Sunday to Thursday."}]}))
    seeds.add("agent_id", agent["id"])
    action = _ok(http.post("/v1/actions", headers=headers, json={
        "name": f"lookup_order_{tag}", "description": "Look up an order",
        "webhook_url": seeds.values["url"][0], "method": "POST",
        "parameters_schema": {"type": "object", "properties": {"order_id": {"type": "string"}}}}))
    seeds.add("action_id", action["id"])
    source = _ok(http.post("/v1/knowledge/sources", headers=headers, json={"name": f"Fuzz source {tag}"}))
    seeds.add("source_id", source["id"])
    text = b"# Shipping\n\nStandard delivery takes 2 to 4 working days.\n\n# Returns\n\nReturns within 30 days.\n"
    uploaded = _ok(http.post(f"/v1/knowledge/sources/{source['id']}/files", headers=headers,
                             files={"file": ("shipping.md", text, "text/markdown")}, data={"user_id": "fuzz"}))
    seeds.add("document_id", uploaded["document_id"])
    job = _ok(http.post(f"/v1/knowledge/sources/{source['id']}/files", headers=headers,
                        files={"file": ("returns.md", text, "text/markdown")},
                        data={"user_id": "fuzz", "async": "true"}))
    seeds.add("job_id", job["job_id"])
    customer_ref = f"cust-{tag}-{uuid.uuid4().hex[:6]}"
    customer = _ok(http.post("/v1/customers", headers=headers, json={"customer_id": customer_ref,
                                                                     "first_name": "Fuzz"}))
    seeds.add("ref", customer["id"], customer_ref)
    seeds.add("customer_id", customer_ref)
    fact = _ok(http.post(f"/v1/memory/{customer_ref}/save", headers=headers,
                         json={"company_id": company_id, "fact": "Prefers email over phone calls."}))
    seeds.add("fact_id", fact["fact_id"])
    conversation_id = str(uuid.uuid4())
    _ok(http.post("/v1/chat", headers=headers, json={
        "company_id": company_id, "agent_id": agent["id"], "conversation_id": conversation_id,
        "customer_id": customer_ref, "message": "What are your opening hours?"}))
    seeds.add("conversation_id", conversation_id)
    spare = _ok(http.post("/v1/keys", headers=headers, json={"name": f"spare {tag}", "scopes": ["chat"]}))
    seeds.add("key_id", spare["id"])


def seed(server: CortexServer) -> Seeds:
    demo = server.cli("demo", "--json")
    other_password = "pw-" + uuid.uuid4().hex
    other = server.cli("users", "create", "--company", "Fuzz Other Co", "--email",
                       f"other-{uuid.uuid4().hex[:8]}@example.com", "--password", other_password)
    other_key = server.cli("keys", "create", "--company-id", other["company_id"], "--name", "fuzz")["key"]
    with httpx.Client(base_url=server.url, timeout=120) as http:
        login = _ok(http.post("/portal/api/login", json={"email": demo["email"], "password": demo["password"]}))
        second = _ok(http.post("/portal/api/login", json={"email": demo["email"], "password": demo["password"]}))
        seeds = Seeds(api_key=demo["api_key"], portal_token=login["token"], logout_token=second["token"])
        seeds.add("url", server.closed_url + "/orders", server.closed_url + "/page.html")
        seeds.add("embedding_model", *LOCAL_EMBEDDING_MODELS)
        seeds.add("agent_id", demo["agent_id"])
        _seed_company(http, demo["api_key"], demo["company_id"], seeds, "a")
        _seed_company(http, other_key, other["company_id"], seeds, "b")
    return seeds


# Body fields holding a URL Cortex would fetch or call: always a closed loopback port.
URL_FIELDS = ("url", "webhook_url")
# Operations whose body names a URL to reach or an embedding model.
OUTBOUND_OPERATIONS = "^/v1/(knowledge|actions|webhooks)"
# Embedding models whose calls stay on this machine: local, or OpenAI-compatible at the scripted server.
LOCAL_EMBEDDING_MODELS = ("minilm", "openai")


def write_config(seeds: Seeds, folder: Path) -> Path:
    """A schemathesis.toml binding each id parameter, in the path, the query and the body, to the seeds."""
    lines: list[str] = []
    for name, values in seeds.values.items():
        lines += [f"[dictionaries.{name}]", "values = " + json.dumps(values), ""]
    lines.append("[parameters]")
    for name in seeds.values:
        if name in ("url", "embedding_model"):
            continue
        for location in ("path", "query", "body"):
            lines.append(f'"{location}.{name}" = {{ dictionary = "{name}", probability = 0.5 }}')
    for name in URL_FIELDS:
        lines.append(f'"body.{name}" = {{ dictionary = "url", probability = 1.0 }}')
    # Hosted embedding models other than the OpenAI-compatible one would call their provider's own host.
    lines.append('"body.embedding_model" = { dictionary = "embedding_model", probability = 1.0 }')
    # The coverage, examples and stateful phases build their own values and ignore the bindings: where a
    # URL is fetched or called, or a hosted model named, only the fuzzing phase runs (`outbound_urls` and
    # `embedding_models_sent` prove the bindings held).
    lines += ["", "[[operations]]", f'include-path-regex = "{OUTBOUND_OPERATIONS}"',
              "phases.coverage.enabled = false", "phases.examples.enabled = false",
              "phases.stateful.enabled = false"]
    path = folder / "schemathesis.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


@dataclass
class RunResult:
    label: str
    returncode: int
    cases: int
    server_errors: int
    schema_violations: int
    output_tail: str


def run_schemathesis(server: CortexServer, config: Path, *, label: str, token: str, include_regex: str,
                     max_examples: int, seed_value: int, report_dir: Path, exclude: tuple[str, ...] = ()) -> RunResult:
    report = report_dir / f"{label}.ndjson"
    command = [SCHEMATHESIS, "--config-file", str(config), "run", server.url + "/openapi.json",
               "--checks", ",".join(CHECKS), "--max-examples", str(max_examples), "--seed", str(seed_value),
               "--header", f"Authorization: Bearer {token}", "--include-path-regex", include_regex,
               "--request-timeout", "60", "--workers", "1", "--no-shrink", "--continue-on-failure",
               "--report", "ndjson", "--report-ndjson-path", str(report), "--warnings", "off"]
    for path in exclude:
        command += ["--exclude-path", path]
    result = subprocess.run(command, capture_output=True, text=True, env=server.env, timeout=7200,
                            cwd=report_dir)  # schemathesis keeps its cache in the working folder
    cases, server_errors = _count(report)
    return RunResult(label, result.returncode, cases, server_errors, _schema_violations(report),
                     (result.stdout + result.stderr)[-6000:])


def _count(report: Path) -> tuple[int, int]:
    """Requests sent and 5xx answers received, read from schemathesis' own event log."""
    cases = errors = 0
    if not report.exists():
        return 0, 0
    for line in report.read_text().splitlines():
        for status in _statuses(json.loads(line)):
            cases += 1
            errors += status >= 500
    return cases, errors


def _schema_violations(report: Path) -> int:
    """Responses that did not match the schema declared for their status, from the same event log."""
    lines = report.read_text().splitlines() if report.exists() else []
    return sum(_failed_checks(json.loads(line), "response_schema_conformance") for line in lines)


def _failed_checks(value: Any, name: str) -> int:
    if isinstance(value, dict):
        own = int(value.get("name") == name and value.get("status") == "failure")
        return own + sum(_failed_checks(item, name) for item in value.values())
    if isinstance(value, list):
        return sum(_failed_checks(item, name) for item in value)
    return 0


def outbound_urls(report: Path, allowed_prefix: str) -> list[str]:
    """URLs and hosted embedding models sent in request bodies that would leave this machine (must be
    none): a URL not at the closed loopback port, an embedding model not in LOCAL_EMBEDDING_MODELS."""
    found: list[str] = []
    for line in report.read_text().splitlines() if report.exists() else []:
        for body in _bodies(json.loads(line)):
            if not isinstance(body, dict):
                continue
            for name in URL_FIELDS:
                value = body.get(name)
                if isinstance(value, str) and not value.startswith(allowed_prefix):
                    found.append(value)
            model = body.get("embedding_model")
            if isinstance(model, str) and model not in LOCAL_EMBEDDING_MODELS:
                found.append("embedding_model=" + model)
    return found


def _bodies(value: Any) -> list[Any]:
    found: list[Any] = []
    if isinstance(value, dict):
        request = value.get("request")
        if isinstance(request, dict) and isinstance(request.get("body"), str):
            try:
                found.append(json.loads(request["body"]))
            except ValueError:
                pass
        for item in value.values():
            found += _bodies(item)
    elif isinstance(value, list):
        for item in value:
            found += _bodies(item)
    return found


def _statuses(value: Any) -> list[int]:
    """Every response status_code found in one event (the interactions it recorded)."""
    found: list[int] = []
    if isinstance(value, dict):
        response = value.get("response")
        if isinstance(response, dict) and isinstance(response.get("status_code"), int):
            found.append(response["status_code"])
        for key, item in value.items():
            if key != "response":
                found += _statuses(item)
    elif isinstance(value, list):
        for item in value:
            found += _statuses(item)
    return found


def fuzz(database_url: str, *, max_examples: int, seed_value: int = 1, home: Path | None = None) -> dict[str, Any]:
    own_home = home is None
    folder = Path(tempfile.mkdtemp(prefix="cortex-fuzz-")) if home is None else home
    folder.mkdir(parents=True, exist_ok=True)
    llm = ScriptedLLM().start()
    server = CortexServer(database_url, folder, llm.api_base).start()
    try:
        seeds = seed(server)
        config = write_config(seeds, folder)
        runs = [
            run_schemathesis(server, config, label="api", token=seeds.api_key, include_regex="^/(v1|health)",
                             max_examples=max_examples, seed_value=seed_value, report_dir=folder, exclude=ENDLESS),
            run_schemathesis(server, config, label="portal", token=seeds.portal_token, include_regex="^/portal",
                             max_examples=max_examples, seed_value=seed_value, report_dir=folder, exclude=(LOGOUT,)),
            run_schemathesis(server, config, label="logout", token=seeds.logout_token, include_regex=f"^{LOGOUT}$",
                             max_examples=max_examples, seed_value=seed_value, report_dir=folder),
        ]
    finally:
        server.stop()
        llm.stop()
    leaked = [url for run in runs for url in outbound_urls(folder / f"{run.label}.ndjson", server.closed_url)]
    summary = {
        "max_examples_per_operation": max_examples, "seed": seed_value,
        "urls_outside_loopback": leaked[:20],
        "requests": sum(run.cases for run in runs), "server_errors": sum(run.server_errors for run in runs),
        "schema_violations": sum(run.schema_violations for run in runs),
        "runs": {run.label: {"requests": run.cases, "server_errors": run.server_errors,
                             "schema_violations": run.schema_violations, "exit_code": run.returncode}
                 for run in runs},
        "seeded_ids": {name: len(values) for name, values in seeds.values.items()},
        "server_log": str(server.log),
    }
    failed = [run for run in runs if run.server_errors or run.schema_violations or run.returncode != 0]
    summary["failures"] = {run.label: run.output_tail for run in failed}
    if leaked:
        summary["failures"]["urls"] = "requests named URLs outside the closed loopback port"
    if own_home and not summary["failures"]:
        shutil.rmtree(folder, ignore_errors=True)
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--max-examples", type=int, default=200, help="cases per operation and phase")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--database-url", help="a PostgreSQL server with pgvector; default: an embedded one")
    args = parser.parse_args()
    from cortex.db.embedded import EmbeddedPostgres
    from tests.scratch_db import run_sql

    home = Path(tempfile.mkdtemp(prefix="cortex-fuzz-"))
    embedded = None
    server_url = args.database_url
    if server_url is None:
        embedded = EmbeddedPostgres(home / "pg")
        server_url = embedded.start()
    name = f"cortex_fuzz_{uuid.uuid4().hex[:8]}"
    run_sql(server_url, f'CREATE DATABASE "{name}"', autocommit=True)
    from sqlalchemy.engine import make_url

    database_url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
    try:
        summary = fuzz(database_url, max_examples=args.max_examples, seed_value=args.seed, home=home / "cortex")
    finally:
        if embedded is not None:
            embedded.stop()
    print(json.dumps(summary, indent=2))
    sys.exit(1 if summary["server_errors"] or summary["schema_violations"] or summary["failures"] else 0)


if __name__ == "__main__":
    main()
