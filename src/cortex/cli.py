"""The `cortex` command: serve, worker, demo, keys, users, db, ingest, export."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

from cortex.settings import Settings

T = TypeVar("T")

app = typer.Typer(help="Cortex: a self-hosted AI engine for customer conversations.", no_args_is_help=True)
keys_app = typer.Typer(help="API keys.", no_args_is_help=True)
users_app = typer.Typer(help="Portal users.", no_args_is_help=True)
db_app = typer.Typer(help="Database.", no_args_is_help=True)
export_app = typer.Typer(help="Export a company's data through the API (needs the `export` extra: dlt).",
                         no_args_is_help=True)
app.add_typer(keys_app, name="keys")
app.add_typer(users_app, name="users")
app.add_typer(db_app, name="db")
app.add_typer(export_app, name="export")

# Human-facing output goes to stderr so that `--json` leaves stdout clean.
err = Console(stderr=True)


def _with_session(work: Callable[[Any], Awaitable[T]]) -> T:
    """Run `work(session)` against the service database (embedded or DATABASE_URL), migrated."""
    from cortex.db.engine import Database
    from cortex.db.migrate import upgrade_async

    async def run() -> T:
        database = Database(Settings())
        try:
            await upgrade_async(database.resolve_url())
            async with database.session() as session:
                return await work(session)
        finally:
            await database.dispose()
            database.stop_embedded()

    return asyncio.run(run())


@app.command()
def serve(host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
          port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
          workers: Annotated[int, typer.Option(min=1, help="Worker processes (more than one needs REDIS_URL).")] = 1,
          ) -> None:
    """Run the API server."""
    import uvicorn

    from cortex.observability.logs import configure_logging

    settings = Settings()
    if workers > 1 and not settings.redis_url:
        # Each worker would keep its own rate-limit counts and revoked-key cache.
        err.print(f"[red]--workers {workers} needs REDIS_URL:[/] without it every worker keeps its own rate "
                  "limits and key cache; set REDIS_URL or run one worker")
        raise typer.Exit(2)
    configure_logging(settings.log_level, settings.log_format)
    if workers > 1:
        _prepare_multiprocess_metrics(settings)
        if settings.database_url:
            # Migrate once here: workers migrating the same fresh database at once collide.
            from cortex.db.migrate import upgrade

            upgrade(settings.database_url)
    # log_config=None: uvicorn keeps our JSON handler; the access line comes from our middleware.
    # SIGTERM: uvicorn stops accepting, lets requests in flight (streams too) finish for up to
    # shutdown_grace_seconds, then the lifespan closes the runtime (jobs finish or are handed back).
    # Behind a proxy, uvicorn reads FORWARDED_ALLOW_IPS itself (see deploy/README.md).
    uvicorn.run("cortex.app:create_app", factory=True, host=host, port=port, workers=workers,
                log_config=None, access_log=False,
                timeout_graceful_shutdown=max(1, round(settings.shutdown_grace_seconds)))


@app.command()
def worker() -> None:
    """Run the job worker alone (webhook deliveries, post-reply work, event pruning) until SIGINT or SIGTERM."""
    from cortex.app import build_runtime, close_runtime
    from cortex.jobs.system import job_system
    from cortex.observability.logs import configure_logging

    settings = Settings()
    configure_logging(settings.log_level, settings.log_format)

    async def run() -> None:
        runtime = await build_runtime(settings)
        try:
            # SIGINT/SIGTERM stop it gracefully: running jobs finish or are handed back to the queue.
            await job_system(runtime).run_worker(install_signal_handlers=True)
        finally:
            await close_runtime(runtime)

    asyncio.run(run())


def _prepare_multiprocess_metrics(settings: Settings) -> None:
    """Workers write their Prometheus values to files in one folder, which a scrape adds up.

    The folder must be set before any worker imports prometheus_client, and emptied at start so that
    the counters of a previous run don't carry over.
    """
    import os

    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    path = Path(folder) if folder else settings.resolved_data_dir / "prometheus"
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.db"):  # only prometheus_client's own files: the folder may be the operator's
        stale.unlink()
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(path)


def _print_demo(seed: Any, host: str, port: int) -> None:
    base = f"http://{host}:{port}"
    err.print(f"[bold green]Cortex demo ready[/]\n"
              f"  company_id  {seed.company_id}\n  agent_id    {seed.agent_id}\n"
              f"  portal      {seed.email} / {seed.password}\n  api_key     {seed.api_key}  (shown once)\n")
    conversation = uuid.uuid4()
    err.print("Try a chat:\n"
              f"  curl -s {base}/v1/chat -H 'Authorization: Bearer {seed.api_key}' "
              "-H 'Content-Type: application/json' \\\n"
              f"    -d '{{\"company_id\":\"{seed.company_id}\",\"agent_id\":\"{seed.agent_id}\","
              f"\"conversation_id\":\"{conversation}\",\"customer_id\":\"demo-customer\","
              "\"message\":\"What are your opening hours?\"}'\n"
              f"Docs: {base}/docs", soft_wrap=True)
    err.print(f"Portal: {base}/portal  (log in as {seed.email} with the password above)", soft_wrap=True)


@app.command()
def demo(as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")] = False) -> None:
    """Seed (idempotently) the demo company, user and agent, and issue a fresh API key."""
    from cortex.demo.seed import seed_demo

    seed = _with_session(seed_demo)
    if as_json:
        typer.echo(json.dumps(seed.as_json_dict()))
    else:
        _print_demo(seed, "127.0.0.1", 8000)


@app.command()
def up(host: str = "127.0.0.1", port: int = 8000) -> None:
    """Seed the demo, print how to call it, and serve."""
    from cortex.demo.seed import seed_demo

    _print_demo(_with_session(seed_demo), host, port)
    serve(host=host, port=port, workers=1)


@keys_app.command("create")
def keys_create(
    company_id: Annotated[uuid.UUID, typer.Option(help="Company the key acts for.")],
    name: Annotated[str, typer.Option(help="A name to recognise the key by.")],
    scopes: Annotated[list[str] | None, typer.Option("--scopes", help="Scope (repeatable); default *.")] = None,
    expires_in_days: Annotated[int | None, typer.Option(min=1, max=365)] = None,
    rate_limit_per_minute: Annotated[int | None, typer.Option(min=1, help="This key's own limit.")] = None,
) -> None:
    """Create an API key; the raw key is printed once."""
    from pydantic import ValidationError

    from cortex.auth.schemas import ApiKeyCreate
    from cortex.auth.service import create_api_key
    from cortex.db.models import Company

    try:
        body = ApiKeyCreate(name=name, scopes=scopes or ["*"], expires_in_days=expires_in_days,
                            rate_limit_per_minute=rate_limit_per_minute)
    except ValidationError as exc:
        err.print(f"[red]invalid key:[/] {exc}")
        raise typer.Exit(2) from exc

    async def work(session: Any) -> Any:
        if await session.get(Company, company_id) is None:
            return None
        return await create_api_key(session, company_id, body)

    created = _with_session(work)
    if created is None:
        err.print(f"[red]no company with id {company_id}[/]")
        raise typer.Exit(1)
    typer.echo(json.dumps(created.model_dump(mode="json")))


@users_app.command("create")
def users_create(company: Annotated[str, typer.Option(help="Company name (created if new).")],
                 email: Annotated[str, typer.Option()], password: Annotated[str, typer.Option()]) -> None:
    """Create a portal user."""
    from cortex.auth.service import create_user, get_or_create_company
    from cortex.kit.errors import Conflict

    if len(password) < 8:
        err.print("[red]password must be at least 8 characters[/]")
        raise typer.Exit(2)

    async def work(session: Any) -> dict[str, str]:
        owner = await get_or_create_company(session, company)
        user = await create_user(session, owner, email, password)
        return {"user_id": str(user.id), "company_id": str(owner.id), "email": user.email}

    try:
        typer.echo(json.dumps(_with_session(work)))
    except Conflict as exc:
        err.print(f"[red]{exc.detail}[/]")
        raise typer.Exit(1) from exc


def _ingest_files(paths: list[Path]) -> list[tuple[Path, str]]:
    """The files to ingest, each with its document name: a folder's supported files, recursively (named by
    their path inside it), and the files given (named by their file name)."""
    from cortex.knowledge.convert import SUPPORTED_EXTENSIONS

    found: list[tuple[Path, str]] = []
    for path in paths:
        if path.is_dir():
            for file in sorted(p for p in path.rglob("*") if p.is_file()):
                if file.suffix.lower() in SUPPORTED_EXTENSIONS:
                    found.append((file, file.relative_to(path).as_posix()))
        elif path.suffix.lower() in SUPPORTED_EXTENSIONS:
            found.append((path, path.name))
        else:
            err.print(f"[red]unsupported file type:[/] {path} (one of {', '.join(sorted(SUPPORTED_EXTENSIONS))})")
            raise typer.Exit(2)
    return found


@app.command()
def ingest(
    paths: Annotated[list[Path], typer.Argument(exists=True, readable=True,
                                                help="Files or folders (recursively, supported files only).")],
    source_id: Annotated[uuid.UUID, typer.Option("--source-id", help="Knowledge source to fill.")],
    embedding_model: Annotated[str | None, typer.Option(help="minilm, bge-m3, openai or cohere.")] = None,
    user_id: Annotated[str | None, typer.Option(help="Recorded on the jobs as their author.")] = None,
) -> None:
    """Ingest files into a knowledge source, one document each (a file of a name the source already holds
    replaces that document only; the same bytes are left unchanged), with one progress bar over all files.
    A file may lie anywhere this user can read: it is copied into the company's upload folder first, so any
    worker can resume its job. Each file runs as a job recorded like an API job (GET /v1/jobs/{job_id}).
    Prints the documents as JSON."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from cortex.app import build_runtime, close_runtime
    from cortex.kit.errors import CortexError
    from cortex.knowledge import documents, jobs
    from cortex.knowledge.service import Accepted, KnowledgeComponent
    from cortex.knowledge.uploads import copy_local_file
    from cortex.pipeline.ports import KNOWLEDGE

    files = _ingest_files(paths)
    if not files:
        err.print("[red]no supported files to ingest[/]")
        raise typer.Exit(2)

    async def run() -> list[dict[str, Any]]:
        runtime = await build_runtime(Settings())
        try:
            component = runtime.components[KNOWLEDGE]
            assert isinstance(component, KnowledgeComponent)
            source = await _find_source(runtime, source_id)
            company_id = source.company_id
            document_ids: list[uuid.UUID] = []
            with Progress(TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                          TimeElapsedColumn(), console=err) as bar:
                task = bar.add_task(f"ingesting {len(files)} files", total=100 * len(files))
                for index, (file, name) in enumerate(files):
                    counter = f"[{index + 1}/{len(files)}] {name}"
                    bar.update(task, completed=100 * index, description=f"{counter}: queued")
                    copy = await asyncio.to_thread(copy_local_file, runtime.settings, company_id, file)
                    result = await component.ingest_path(
                        company_id=company_id, source=source, path=copy, user_id=user_id,
                        embedding_model=embedding_model, run_async=True, display_name=name)
                    if result.document_id is not None:
                        document_ids.append(result.document_id)
                    if not isinstance(result, Accepted):  # unchanged: answered without a job
                        bar.update(task, completed=100 * (index + 1), description=f"{counter}: {result.status}")
                        continue
                    # The job runs in this process exactly as an API job would; the bar follows its record.
                    while True:
                        job = await jobs.get_job(runtime, company_id, result.job_id)
                        bar.update(task, completed=100 * index + job.progress,
                                   description=f"{counter}: {job.status}, {job.chunks_embedded} chunks embedded")
                        if job.status in ("completed", "failed"):
                            break
                        await asyncio.sleep(0.2)
                    await component.jobs.wait_idle()
            found = [documents.to_public(await documents.document_of(runtime, company_id, document_id))
                     for document_id in document_ids]
            return [document.model_dump(mode="json") for document in found]
        except CortexError as exc:
            err.print(f"[red]{exc.detail}[/]")
            raise typer.Exit(2) from exc
        finally:
            await close_runtime(runtime)

    result = asyncio.run(run())
    typer.echo(json.dumps(result))
    failed = [document for document in result if document["status"] != "ready"]
    for document in failed:
        err.print(f"[red]ingestion failed:[/] {document['name']}: {document['error']}")
    if failed:
        raise typer.Exit(1)


async def _find_source(runtime: Any, source_id: uuid.UUID) -> Any:
    from cortex.db.models import KnowledgeSource
    from cortex.kit.errors import NotFound

    async with runtime.database.session() as session:
        source = await session.get(KnowledgeSource, source_id)
    if source is None:
        raise NotFound(f"no knowledge source with id {source_id}")
    return source


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply the Alembic migrations."""
    from cortex.db.engine import Database
    from cortex.db.migrate import upgrade

    database = Database(Settings())
    try:
        upgrade(database.resolve_url())
    finally:
        database.stop_embedded()
    err.print("[green]database is up to date[/]")


@export_app.command("duckdb")
def export_duckdb(
    path: Annotated[Path, typer.Argument(help="The DuckDB file (created when new; later runs add what changed).")],
    url: Annotated[str, typer.Option("--url", envvar="CORTEX_API_URL", help="Cortex's base URL.")
                   ] = "http://127.0.0.1:8000",
    api_key: Annotated[str | None, typer.Option("--api-key", envvar="CORTEX_API_KEY",
                                                help="An API key of the company to export.")] = None,
    dataset: Annotated[str, typer.Option(help="The schema the tables go in (not the file's own name: DuckDB "
                                           "would read both as one).")] = "cortex_data",
    table: Annotated[list[str] | None, typer.Option("--table", help="Only this table (repeatable).")] = None,
) -> None:
    """Load conversations, messages, customers, facts, documents and events into DuckDB, incrementally: each
    run fetches only what changed since the last one into the same file. Prints the rows loaded per table."""
    import hashlib

    if not api_key:
        err.print("[red]no API key:[/] pass --api-key or set CORTEX_API_KEY")
        raise typer.Exit(2)
    try:
        import dlt
        from dlt.pipeline.exceptions import PipelineStepFailed

        from cortex.integrations import dlt as cortex_dlt
        from cortex.integrations.dlt_progress import RichProgress
    except ImportError as exc:
        err.print(f"[red]the export needs dlt:[/] pip install 'cortex[export]' ({exc})")
        raise typer.Exit(2) from exc
    target = path.resolve()
    # One pipeline (and so one set of incremental cursors) per file and server.
    name = "cortex_export_" + hashlib.sha256(f"{target}|{url.rstrip('/')}".encode()).hexdigest()[:12]
    try:
        source = cortex_dlt.cortex_source(url, api_key, tables=tuple(table) if table else None)
    except ValueError as exc:
        err.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from exc
    pipeline = cortex_dlt.pipeline(dlt.destinations.duckdb(str(target)), pipeline_name=name, dataset_name=dataset,
                                   progress=RichProgress(err))
    try:
        pipeline.run(source)
    except PipelineStepFailed as exc:
        err.print(f"[red]export failed at {exc.step}:[/] {exc.exception}")
        raise typer.Exit(1) from exc
    normalized = pipeline.last_trace.last_normalize_info if pipeline.last_trace else None
    counts = normalized.row_counts if normalized else {}
    loaded = {name: count for name, count in counts.items() if not name.startswith("_dlt")}
    typer.echo(json.dumps({"path": str(target), "dataset": dataset, "rows_loaded": loaded}))


if __name__ == "__main__":
    app()
